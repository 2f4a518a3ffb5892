"""Local acceptance statistics: the JSON-lines log, its summary, and its text form."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from codet5_lsp.server.stats import (
    StatsLog,
    default_stats_path,
    format_summary,
    percentile,
    read_events,
    summarize,
)


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_are_json_lines_with_the_documented_fields(tmp_path):
    path = tmp_path / "sub" / "stats.jsonl"  # the folder is created on first write
    log = StatsLog(path)
    log.record_shown("s1", 123.456, "python")
    log.record_accepted("s1")
    shown, accepted = lines_of(path)
    assert set(shown) == {"kind", "id", "latency_ms", "ts", "language"}
    assert shown["kind"] == "shown" and shown["id"] == "s1" and shown["latency_ms"] == 123.5
    assert shown["language"] == "python" and isinstance(shown["ts"], float)
    # the acceptance carries the shown event's latency and language
    assert accepted == {
        **accepted,
        "kind": "accepted",
        "id": "s1",
        "latency_ms": 123.5,
        "language": "python",
    }


def test_summary_rate_and_percentiles(tmp_path):
    path = tmp_path / "stats.jsonl"
    log = StatsLog(path)
    for i in range(1, 21):  # latencies 10..200 ms
        log.record_shown(f"s{i}", i * 10.0, "python" if i % 2 else "go")
    for i in (2, 4, 5, 7, 7):  # 7 accepted twice counts once
        log.record_accepted(f"s{i}")
    log.record_accepted("never-shown")
    summary = summarize(path)
    assert summary["shown"] == 20
    assert summary["accepted"] == 4
    assert summary["acceptance_rate"] == pytest.approx(0.2)
    assert summary["latency_p50_ms"] == pytest.approx(105.0)
    assert summary["latency_p95_ms"] == pytest.approx(190.5)
    assert summary["by_language"] == {
        "go": {"shown": 10, "accepted": 2},
        "python": {"shown": 10, "accepted": 2},
    }
    assert summary["skipped_lines"] == 0


def test_missing_log_is_empty(tmp_path):
    summary = summarize(tmp_path / "absent.jsonl")
    assert summary["shown"] == 0 and summary["accepted"] == 0
    assert summary["acceptance_rate"] is None and summary["latency_p50_ms"] is None
    assert "no suggestions recorded yet" in format_summary(summary)


def test_corrupt_lines_are_skipped(tmp_path):
    path = tmp_path / "stats.jsonl"
    good = [
        {"kind": "shown", "id": "a", "latency_ms": 50, "ts": 1.0, "language": "c"},
        {"kind": "shown", "id": "b", "latency_ms": 150, "ts": 2.0, "language": "c"},
        {"kind": "accepted", "id": "a", "latency_ms": 50, "ts": 3.0, "language": "c"},
    ]
    raw = [
        json.dumps(good[0]),
        '{"kind": "shown", "id": "tr',
        "not json",
        "[1, 2]",
        json.dumps({"kind": "other", "id": "x"}),
        json.dumps({"kind": "shown"}),
        "",
        json.dumps(good[1]),
        json.dumps({"kind": "shown", "id": "c", "latency_ms": "slow"}),
        json.dumps(good[2]),
    ]
    path.write_bytes(("\n".join(raw) + "\n").encode() + b"\xff\xfe garbage\n")
    summary = summarize(path)
    assert summary["skipped_lines"] == 6
    assert summary["shown"] == 3  # "c" counts as shown, its latency does not
    assert summary["accepted"] == 1
    assert summary["latency_p50_ms"] == pytest.approx(100.0)
    assert "skipped 6 unreadable line(s)" in format_summary(summary)


def test_format_summary_text(tmp_path):
    path = tmp_path / "stats.jsonl"
    log = StatsLog(path)
    log.record_shown("1", 80, "python")
    log.record_shown("2", 120, "python")
    log.record_accepted("2")
    text = format_summary(summarize(path))
    assert "suggestions shown: 2" in text
    assert "accepted: 1 (50.0%)" in text
    assert "latency p50: 100 ms, p95: 118 ms" in text
    assert "python: 1/2 accepted" in text


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 95, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([3.0, 1.0, 2.0], 100, 3.0),
        ([1.0, 2.0], 0, 1.0),
    ],
)
def test_percentile(values, q, expected):
    assert percentile(values, q) == expected


def test_write_failure_does_not_raise(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = StatsLog(blocker / "stats.jsonl")  # parent is a file: cannot be created
    log.record_shown("1", 10, "python")
    log.record_accepted("1")
    assert sum("cannot write statistics" in r.message for r in caplog.records) == 1


def test_log_rotates_past_max_bytes(tmp_path):
    path = tmp_path / "stats.jsonl"
    log = StatsLog(path, max_bytes=500)
    for i in range(20):
        log.record_shown(str(i), 10, "python")
    rotated = path.with_name("stats.jsonl.1")
    assert rotated.exists() and path.stat().st_size <= 500 + 200
    events, bad = read_events(path)
    assert bad == 0 and events[-1]["id"] == "19"


def test_default_path_is_per_user_state(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = default_stats_path()
    assert path.name == "stats.jsonl" and "codet5-lsp" in path.parts
    if sys.platform.startswith("linux"):
        assert path.is_relative_to(tmp_path)
