"""Local acceptance statistics: how often suggestions are taken, and how fast they came.

Events are appended as JSON lines to a file on this machine (nothing leaves it):
    {"kind": "shown"|"accepted", "id": ..., "latency_ms": ..., "ts": ..., "language": ...}
`codet5-lsp stats` reads the file back with `summarize` / `format_summary`. Writing never
raises into the server: a full disk or a read-only folder costs the statistics, not the
completions. The reader skips lines it cannot parse (a crash mid-write, a hand edit).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A log past this size is moved to `<name>.1` (replacing the previous one), so months of
# use stay a few megabytes.
MAX_LOG_BYTES = 5_000_000
_REMEMBERED_SHOWN = 256  # shown ids kept in memory to give accepted events their details


def default_stats_path() -> Path:
    """The per-user state folder's `stats.jsonl` (platformdirs)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("codet5-lsp", appauthor=False)) / "stats.jsonl"


class StatsLog:
    """Appends shown/accepted events to a JSON-lines file."""

    def __init__(self, path: Path | str, max_bytes: int = MAX_LOG_BYTES):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._shown: OrderedDict[str, tuple[float | None, str | None]] = OrderedDict()
        self._failed = False

    def record_shown(
        self, suggestion_id: str, latency_ms: float | None, language: str | None = None
    ) -> None:
        self._shown[suggestion_id] = (latency_ms, language)
        while len(self._shown) > _REMEMBERED_SHOWN:
            self._shown.popitem(last=False)
        self._append(
            {
                "kind": "shown",
                "id": suggestion_id,
                "latency_ms": _round(latency_ms),
                "ts": time.time(),
                "language": language,
            }
        )

    def record_accepted(
        self, suggestion_id: str, latency_ms: float | None = None, language: str | None = None
    ) -> None:
        """Log an acceptance; latency and language default to those of the shown event."""
        shown_latency, shown_language = self._shown.get(suggestion_id, (None, None))
        self._append(
            {
                "kind": "accepted",
                "id": suggestion_id,
                "latency_ms": _round(latency_ms if latency_ms is not None else shown_latency),
                "ts": time.time(),
                "language": language or shown_language,
            }
        )

    def _append(self, event: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.max_bytes and self.path.exists() and self.path.stat().st_size > self.max_bytes:
                self.path.replace(self.path.with_name(self.path.name + ".1"))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event, separators=(",", ":")) + "\n")
        except OSError as exc:
            if not self._failed:  # say it once, not on every suggestion
                log.warning("cannot write statistics to %s: %s", self.path, exc)
            self._failed = True


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def read_events(path: Path | str) -> tuple[list[dict[str, Any]], int]:
    """The well-formed events of the log and the number of lines skipped as bad."""
    events: list[dict[str, Any]] = []
    bad = 0
    try:
        with Path(path).open("r", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if (
                    not isinstance(event, dict)
                    or event.get("kind") not in ("shown", "accepted")
                    or not isinstance(event.get("id"), (str, int))
                ):
                    bad += 1
                    continue
                events.append(event)
    except FileNotFoundError:
        pass
    return events, bad


def summarize(path: Path | str) -> dict[str, Any]:
    """Counts, acceptance rate and latency percentiles of the log at `path`.

    Acceptance rate = distinct accepted ids that were shown / distinct shown ids (None when
    nothing was shown). Latency percentiles are over shown events. A missing file is an
    empty log; bad lines are counted in `skipped_lines` and otherwise ignored.
    """
    events, bad = read_events(path)
    shown: dict[str, dict[str, Any]] = {}
    accepted: set[str] = set()
    for event in events:
        key = str(event["id"])
        if event["kind"] == "shown":
            shown[key] = event
        else:
            accepted.add(key)
    accepted &= shown.keys()
    latencies = [
        float(e["latency_ms"])
        for e in shown.values()
        if isinstance(e.get("latency_ms"), (int, float))
        and not isinstance(e.get("latency_ms"), bool)
        and math.isfinite(e["latency_ms"])
    ]
    by_language: dict[str, dict[str, int]] = {}
    for key, event in shown.items():
        counts = by_language.setdefault(
            str(event.get("language") or "unknown"), {"shown": 0, "accepted": 0}
        )
        counts["shown"] += 1
        counts["accepted"] += key in accepted
    return {
        "path": str(path),
        "shown": len(shown),
        "accepted": len(accepted),
        "acceptance_rate": len(accepted) / len(shown) if shown else None,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "by_language": dict(sorted(by_language.items())),
        "skipped_lines": bad,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines for `codet5-lsp stats`."""

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} ms"

    rate = summary.get("acceptance_rate")
    lines = [
        f"statistics: {summary.get('path', '?')}",
        f"suggestions shown: {summary.get('shown', 0)}",
        f"accepted: {summary.get('accepted', 0)}" + ("" if rate is None else f" ({rate:.1%})"),
        f"latency p50: {ms(summary.get('latency_p50_ms'))}, "
        f"p95: {ms(summary.get('latency_p95_ms'))}",
    ]
    for language, counts in (summary.get("by_language") or {}).items():
        lines.append(f"  {language}: {counts['accepted']}/{counts['shown']} accepted")
    if summary.get("skipped_lines"):
        lines.append(f"skipped {summary['skipped_lines']} unreadable line(s)")
    if not summary.get("shown"):
        lines.append("no suggestions recorded yet")
    return "\n".join(lines)
