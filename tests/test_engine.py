"""The engine: off-loop generation, cancellation within a step, priorities, batching."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from codet5_lsp.inference.engine import CompletionEngine, EngineError
from codet5_lsp.inference.prompts import (
    build_completion_request,
    build_summary_request,
    line_stop_rule,
)
from tests.support.sources import real_code_cases

CASES = real_code_cases(6, seed=3)


@pytest.fixture(scope="module")
def engine(labmodel_int8):
    eng = CompletionEngine(labmodel_int8, device="cpu", compute_type="int8")
    yield eng
    eng.close()


def _request(engine, i=0, mode="infill", **kw):
    prefix, _rest, after = CASES[i]
    return build_completion_request(
        mode,
        prefix,
        after,
        engine.tokenizer,
        max_prefix_tokens=256,
        max_suffix_tokens=32,
        max_new_tokens=kw.pop("max_new_tokens", 12),
        **kw,
    )


def _blocker(engine):
    """A request that holds the worker until `release` is set (to queue others behind it)."""
    release, started = threading.Event(), threading.Event()

    def rule(_text):
        started.set()
        release.wait(10)
        return True

    fut = engine.submit(dataclasses.replace(_request(engine, 0), stop_rule=rule))
    assert started.wait(30)
    return release, fut


def test_cancel_before_start_skips_the_model(engine):
    cancel = threading.Event()
    cancel.set()
    result = engine.generate(_request(engine), cancel)
    assert result.stop_reason == "cancelled" and result.tokens == []


def test_cancel_during_generation_stops_at_the_next_token(engine):
    cancel = threading.Event()
    seen = []

    def rule(text):
        seen.append(text)
        if len(seen) == 3:
            cancel.set()
        return False

    req = dataclasses.replace(_request(engine, 1, max_new_tokens=40), stop_rule=rule, end_tokens=())
    result = engine.generate(req, cancel)
    assert result.stop_reason == "cancelled"
    assert len(seen) == 3  # no token was produced after the cancel


def test_completions_run_before_queued_summaries(engine):
    release, first = _blocker(engine)
    order = []
    summary = engine.submit(
        build_summary_request(
            "def f(x):\n    return x\n", engine.tokenizer, max_source_tokens=64, max_new_tokens=4
        )
    )
    completion = engine.submit(_request(engine, 2, mode="seq2seq", max_new_tokens=4))
    summary.add_done_callback(lambda _f: order.append("summary"))
    completion.add_done_callback(lambda _f: order.append("completion"))
    release.set()
    first.result(30), summary.result(30), completion.result(30)
    assert order == ["completion", "summary"]


def test_queued_compatible_requests_share_a_batch_and_keep_their_results(engine):
    alone = [engine.generate(_request(engine, i)) for i in range(1, 5)]
    release, first = _blocker(engine)
    futures = [engine.submit(_request(engine, i)) for i in range(1, 5)]
    release.set()
    first.result(30)
    batched = [f.result(30) for f in futures]
    assert [r.extra["batch_size"] for r in batched] == [4, 4, 4, 4]
    assert [r.tokens for r in batched] == [r.tokens for r in alone]


def test_one_pass_requests_are_not_merged_and_keep_their_results(engine):
    """Decoder-mode prefixes of equal length go through ctranslate2 in one pass each: merged,
    ctranslate2 would report every example's tokens as batch 0 and cut the wrong one."""

    def request(i):
        return build_completion_request(
            "decoder",
            CASES[i][0],
            "",
            engine.tokenizer,
            max_prefix_tokens=64,
            max_suffix_tokens=0,
            max_new_tokens=16,
            stop_rule=line_stop_rule,
        )

    assert len({len(request(i).decoder_prefix) for i in range(1, 5)}) == 1
    alone = [engine.generate(request(i)) for i in range(1, 5)]
    release, first = _blocker(engine)
    futures = [engine.submit(request(i)) for i in range(1, 5)]
    release.set()
    first.result(30)
    queued = [f.result(30) for f in futures]
    assert [r.extra["batch_size"] for r in queued] == [1, 1, 1, 1]
    assert [r.tokens for r in queued] == [r.tokens for r in alone]


def test_a_failing_request_does_not_kill_the_worker(engine):
    bad = dataclasses.replace(_request(engine), stop_rule=lambda _t: 1 / 0)
    with pytest.raises(EngineError):
        engine.generate(bad)
    assert engine.generate(_request(engine)).stop_reason in ("eos", "length", "stop_rule")


def _summary_preempted_by_a_completion(summary_engine, completion_engine):
    """Run a background summary on `summary_engine`, hold it at its first token, submit a
    completion to `completion_engine`, release: (finish order, preemptions on the summary
    engine, the summary's result, the same summary run alone)."""
    summary_request = build_summary_request(
        "def join_all(folder, names):\n    return [folder + n for n in names]\n",
        summary_engine.tokenizer,
        max_source_tokens=64,
        max_new_tokens=24,
    )
    alone = summary_engine.generate(summary_request)
    release, started = threading.Event(), threading.Event()

    def hold_first_token(_text):
        started.set()
        release.wait(10)
        return False

    order = []
    before = summary_engine.preemptions
    summary = summary_engine.submit(
        dataclasses.replace(summary_request, stop_rule=hold_first_token, end_tokens=())
    )
    assert started.wait(30)
    completion = completion_engine.submit(
        _request(completion_engine, 2, mode="seq2seq", max_new_tokens=4)
    )
    summary.add_done_callback(lambda _f: order.append("summary"))
    completion.add_done_callback(lambda _f: order.append("completion"))
    release.set()
    rerun = summary.result(60)
    completion.result(60)
    return order, summary_engine.preemptions - before, rerun, alone


def test_a_running_background_summary_yields_to_a_completion_and_is_rerun(engine):
    order, preemptions, rerun, alone = _summary_preempted_by_a_completion(engine, engine)
    assert order == ["completion", "summary"]  # the completion did not wait for the summary
    assert preemptions == 1
    assert rerun.tokens == alone.tokens and rerun.stop_reason == alone.stop_reason


def test_a_completion_is_never_preempted(engine):
    release, first = _blocker(engine)  # a completion (priority 0) holding the worker
    before = engine.preemptions
    other = engine.submit(_request(engine, 3, max_new_tokens=4))
    release.set()
    assert first.result(30).stop_reason == "stop_rule"
    assert other.result(30).stop_reason != "cancelled"
    assert engine.preemptions == before


def test_background_work_in_one_engine_yields_to_a_completion_in_another(engine, labmodel_int8):
    """The summary model is often a second engine: its background work must not run beside
    (or before) a completion in the first one."""
    other = CompletionEngine(labmodel_int8, device="cpu", compute_type="int8")
    try:
        order, preemptions, rerun, alone = _summary_preempted_by_a_completion(other, engine)
        assert order == ["completion", "summary"]
        assert preemptions == 1
        assert rerun.tokens == alone.tokens
    finally:
        other.close()


def test_closing_an_engine_fails_what_is_still_queued(labmodel_int8):
    eng = CompletionEngine(labmodel_int8, device="cpu", compute_type="int8")
    release, first = _blocker(eng)
    queued = eng.submit(_request(eng, 1))
    release.set()
    eng.close()
    first.result(30)
    assert queued.done()  # ran before the close, or was cancelled: nobody waits forever
