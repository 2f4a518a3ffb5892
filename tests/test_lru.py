"""The one LRU helper (server/lru.py): what stays, what goes, and when a value is computed."""

from __future__ import annotations

import pytest

from codet5_lsp.server.lru import LruCache


def test_the_least_recently_used_entry_goes_first():
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert list(cache) == ["a", "c"] and "b" not in cache and len(cache) == 2


def test_put_of_a_known_key_refreshes_it():
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert dict(cache.items()) == {"a": 10, "c": 3}


def test_get_or_compute_computes_once_per_key_while_it_is_kept():
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(key)

    cache: LruCache[str, int] = LruCache(2)
    for key in ("aa", "aa", "bbb", "aa", "c", "bbb"):
        assert cache.get_or_compute(key, lambda key=key: compute(key)) == len(key)
    # "bbb" was the least recently used when "c" came in, so it was computed again
    assert calls == ["aa", "bbb", "c", "bbb"]


def test_falsy_values_are_kept():
    calls = []
    cache: LruCache[str, frozenset[bytes]] = LruCache(4)
    for _ in range(3):
        cache.get_or_compute("x", lambda: calls.append(1) or frozenset())
    assert calls == [1]


def test_touch_discard_clear_and_iteration_does_not_refresh():
    cache: LruCache[int, str] = LruCache(3)
    for key in (1, 2, 3):
        cache.put(key, str(key))
    assert list(cache.items()) == [(1, "1"), (2, "2"), (3, "3")]  # not a use
    cache.touch(1)
    cache.put(4, "4")
    assert list(cache) == [3, 1, 4]
    cache.discard(3)
    cache.discard(99)  # absent: nothing happens
    assert list(cache) == [1, 4] and cache.get(3) is None
    cache.clear()
    assert len(cache) == 0


def test_a_zero_limit_keeps_nothing_and_a_negative_one_is_refused():
    cache: LruCache[str, int] = LruCache(0)
    assert cache.get_or_compute("a", lambda: 1) == 1 and len(cache) == 0
    with pytest.raises(ValueError, match="limit"):
        LruCache(-1)
