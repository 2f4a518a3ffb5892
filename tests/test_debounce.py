"""Adaptive debounce: latest-wins per key, delay from the typing rhythm, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from codet5_lsp.server.debounce import AdaptiveDebouncer


class FakeTime:
    """A clock and a sleep that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for wake, future in list(self._sleepers):
            if wake <= self.now + 1e-9:
                self._sleepers.remove((wake, future))
                future.set_result(None)
        for _ in range(3):  # let the woken waiters finish
            await asyncio.sleep(0)


def debouncer(fake: FakeTime, **options) -> AdaptiveDebouncer:
    options.setdefault("min_ms", 50)
    options.setdefault("max_ms", 400)
    return AdaptiveDebouncer(factor=1.5, alpha=0.5, clock=fake.clock, sleep=fake.sleep, **options)


async def start(d: AdaptiveDebouncer, key: str) -> asyncio.Task:
    task = asyncio.ensure_future(d.wait(key))
    await asyncio.sleep(0)  # run it up to its sleep
    return task


async def test_lone_request_wins_after_the_minimum_delay():
    fake = FakeTime()
    d = debouncer(fake)
    task = await start(d, "a")
    await fake.advance(0.049)
    assert not task.done()
    await fake.advance(0.001)
    assert task.done() and task.result() is True
    assert fake.slept == [pytest.approx(0.050)]


async def test_superseded_request_returns_false_latest_true():
    fake = FakeTime()
    d = debouncer(fake)
    first = await start(d, "a")
    await fake.advance(0.02)
    second = await start(d, "a")
    await fake.advance(1.0)
    assert first.result() is False
    assert second.result() is True


async def test_independent_keys_do_not_interfere():
    fake = FakeTime()
    d = debouncer(fake)
    a = await start(d, "file:///a.py")
    b = await start(d, "file:///b.py")
    await fake.advance(1.0)
    assert a.result() is True and b.result() is True


async def type_rhythm(fake: FakeTime, d: AdaptiveDebouncer, key: str, gap_s: float, n: int):
    tasks = []
    for _ in range(n):
        tasks.append(await start(d, key))
        await fake.advance(gap_s)
    await fake.advance(1.0)
    return [t.result() for t in tasks]


@pytest.mark.parametrize(
    ("gap_ms", "expected_delay_ms"),
    [
        (10, 50),  # very fast: 1.5 * 10 = 15, clamped up to min_ms
        (40, 60),  # fast: 1.5 * 40
        (120, 180),  # moderate
        (200, 300),  # slow
        (350, 400),  # slower: 525 clamped down to max_ms
    ],
)
async def test_delay_follows_rhythm_within_bounds(gap_ms, expected_delay_ms):
    fake = FakeTime()
    d = debouncer(fake)
    results = await type_rhythm(fake, d, "a", gap_ms / 1000, 8)
    assert d.delay_ms("a") == pytest.approx(expected_delay_ms)
    assert d.interval_ms("a") == pytest.approx(gap_ms)
    assert fake.slept[-1] == pytest.approx(expected_delay_ms / 1000)
    assert all(0.050 - 1e-9 <= s <= 0.400 + 1e-9 for s in fake.slept)
    # a request wins exactly when the next keystroke came later than its own delay
    assert results[-1] is True
    assert results[:-1] == [gap_ms / 1000 >= s - 1e-9 for s in fake.slept[:-1]]
    if gap_ms < 50:
        assert not any(results[:-1])  # a fast typist: the model runs once, at the end


async def test_fast_typist_waits_less_than_slow_typist():
    fake = FakeTime()
    d = debouncer(fake)
    await type_rhythm(fake, d, "fast", 0.03, 6)
    await type_rhythm(fake, d, "slow", 0.25, 6)
    assert d.delay_ms("fast") < d.delay_ms("slow")
    assert d.min_ms <= d.delay_ms("fast") and d.delay_ms("slow") <= d.max_ms


async def test_ewma_moves_gradually_and_pauses_are_not_rhythm():
    fake = FakeTime()
    d = debouncer(fake, pause_ms=1000)
    d.note_keystroke("a", 0.0)
    d.note_keystroke("a", 0.1)
    assert d.interval_ms("a") == pytest.approx(100)
    d.note_keystroke("a", 0.3)  # 200 ms gap, alpha 0.5
    assert d.interval_ms("a") == pytest.approx(150)
    d.note_keystroke("a", 5.3)  # 5 s pause: ignored
    assert d.interval_ms("a") == pytest.approx(150)
    d.note_keystroke("a", 5.35)  # rhythm continues from the new keystroke
    assert d.interval_ms("a") == pytest.approx(100)


async def test_reported_keystrokes_replace_inferred_ones():
    """With didChange reporting keystrokes, requests must not count a second time."""
    fake = FakeTime()
    d = debouncer(fake)
    for i in range(4):
        fake.now = i * 0.2
        d.note_keystroke("a")
        task = await start(d, "a")  # the request right after the change, same instant
    assert d.interval_ms("a") == pytest.approx(200)
    await fake.advance(1.0)
    assert task.result() is True


async def test_no_rhythm_yet_uses_min_or_initial_interval():
    fake = FakeTime()
    assert debouncer(fake).delay_ms("new") == 50
    assert debouncer(fake, initial_interval_ms=100).delay_ms("new") == pytest.approx(150)


async def test_forget_releases_pending_waits():
    fake = FakeTime()
    d = debouncer(fake)
    task = await start(d, "a")
    d.forget("a")
    await fake.advance(1.0)
    assert task.result() is False


async def test_cancelled_wait_propagates():
    fake = FakeTime()
    d = debouncer(fake)
    task = await start(d, "a")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_real_clock_and_sleep_by_default():
    d = AdaptiveDebouncer(min_ms=1, max_ms=2)
    assert await d.wait("a") is True


@pytest.mark.parametrize(
    "options", [{"min_ms": -1}, {"min_ms": 100, "max_ms": 50}, {"alpha": 0}, {"alpha": 1.5}]
)
def test_bad_configuration_rejected(options):
    with pytest.raises(ValueError):
        AdaptiveDebouncer(**options)
