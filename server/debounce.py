"""Adaptive server-side debounce: wait for a pause in typing before calling the model.

Editors ask for a completion on every keystroke; most of those requests are stale before the
model could answer. A fixed delay is either too long for a slow typist (ghost text feels
laggy) or too short for a fast one (the model runs for keystrokes nobody sees). The delay
here follows each document's typing rhythm: an exponentially weighted moving average (EWMA)
of the interval between keystrokes, times `factor` (a little longer than one interval, so
the next keystroke usually arrives inside the wait), clamped to [min_ms, max_ms].

Keystroke times come from the requests themselves (`wait` notes one per call), or, once a
caller reports them with `note_keystroke` (e.g. from didChange), from those reports only,
so one keystroke is never counted twice. Gaps longer than `pause_ms` are pauses (reading,
thinking), not rhythm, and are ignored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class _KeyState:
    last_keystroke: float | None = None  # clock seconds
    interval_ms: float | None = None  # EWMA of inter-keystroke intervals
    generation: int = 0  # bumped by every wait(); a waiter is the latest if it still matches
    explicit: bool = False  # keystrokes are reported by note_keystroke, not inferred


class AdaptiveDebouncer:
    """Latest-wins debounce per key (document uri) with a delay adapted to typing speed."""

    def __init__(
        self,
        min_ms: float = 75,
        max_ms: float = 250,
        *,
        factor: float = 1.5,
        alpha: float = 0.3,
        pause_ms: float = 1000,
        initial_interval_ms: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        if min_ms < 0 or max_ms < min_ms:
            raise ValueError(f"need 0 <= min_ms <= max_ms, got {min_ms}, {max_ms}")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.min_ms = float(min_ms)
        self.max_ms = float(max_ms)
        self.factor = factor
        self.alpha = alpha
        self.pause_ms = pause_ms
        self.initial_interval_ms = initial_interval_ms
        self._clock = clock
        self._sleep = sleep
        self._keys: dict[str, _KeyState] = {}

    def _state(self, key: str) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(interval_ms=self.initial_interval_ms)
        return state

    def _record(self, state: _KeyState, t: float) -> None:
        if state.last_keystroke is not None:
            gap_ms = (t - state.last_keystroke) * 1000
            if 0 <= gap_ms <= self.pause_ms:
                state.interval_ms = (
                    gap_ms
                    if state.interval_ms is None
                    else self.alpha * gap_ms + (1 - self.alpha) * state.interval_ms
                )
        state.last_keystroke = t

    def note_keystroke(self, key: str, t: float | None = None) -> None:
        """Report a keystroke in `key` at clock time `t` (seconds; now when omitted).

        From the first report on, `wait` stops inferring keystrokes from requests for `key`.
        """
        state = self._state(key)
        state.explicit = True
        self._record(state, self._clock() if t is None else t)

    def interval_ms(self, key: str) -> float | None:
        """The current estimate of the inter-keystroke interval for `key` (None: no data)."""
        state = self._keys.get(key)
        return state.interval_ms if state else self.initial_interval_ms

    def delay_ms(self, key: str) -> float:
        """How long a request for `key` waits now: clamp(factor * interval, min, max)."""
        interval = self.interval_ms(key)
        if interval is None:
            return self.min_ms  # no rhythm known yet: answer the first request quickly
        return min(self.max_ms, max(self.min_ms, self.factor * interval))

    async def wait(self, key: str) -> bool:
        """Sleep the adaptive delay; True if this is still the newest request for `key`.

        False means a newer request for the same key arrived meanwhile (latest wins): the
        caller answers "no suggestion" and lets the newer request do the work.
        """
        state = self._state(key)
        if not state.explicit:
            self._record(state, self._clock())
        state.generation += 1
        mine = state.generation
        delay = self.delay_ms(key)
        if delay > 0:
            await self._sleep(delay / 1000)
        return self._keys.get(key) is state and state.generation == mine

    def forget(self, key: str) -> None:
        """Drop what is known about `key` (document closed); pending waits return False."""
        self._keys.pop(key, None)
