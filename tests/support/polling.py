"""Waiting, in real time, for something another process does (an editor, a server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2
) -> Any:
    """`probe()`'s first truthy answer, asked every `interval` s; after `timeout` s the test
    fails naming `what` and the last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
