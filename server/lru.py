"""A bounded least-recently-used map: the one LRU helper of the server.

Why one helper: the context step (identifier sets, token counts, retrieval units), the
type-through cache and the summary cache all keep "the last N things used" the same way;
one small typed class says so once, instead of four hand-written OrderedDict dances.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `limit` entries; reading or writing an entry makes it the most recent, and
    the least recently used one goes when a new entry would exceed the limit."""

    def __init__(self, limit: int):
        if limit < 0:
            raise ValueError(f"an LRU cache needs a limit of at least 0, not {limit}")
        self.limit = limit
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """Keys, least recently used first (iterating does not count as a use)."""
        return iter(self._entries)

    def items(self) -> Iterator[tuple[K, V]]:
        """(key, value) pairs, least recently used first (not a use)."""
        return iter(self._entries.items())

    def get(self, key: K) -> V | None:
        """The value for `key` (now the most recent), or None."""
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: K, value: V) -> None:
        """Store `value` as the most recent entry, dropping the oldest beyond the limit."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The value for `key`, computed with `compute()` and stored on a miss."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = compute()
        self.put(key, value)
        return value

    def touch(self, key: K) -> None:
        """Make `key` the most recent entry (it must be present)."""
        self._entries.move_to_end(key)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
