"""Type-through cache: keep showing a suggestion while the user types what it says.

When the user types the characters the ghost text shows, the editor asks again after every
keystroke. Calling the model each time would be slow and could change the suggestion under
the user's fingers; instead the rest of the suggestion already shown is served at once.

Keys are bounded windows, not documents: the last `PREFIX_KEY_CHARS` characters before the
cursor and the first `SUFFIX_KEY_CHARS` after it, each hashed (BLAKE2b, 16 bytes), with the
document uri. Hashes keep each entry small whatever the file size; a window instead of the
whole prefix lets the key survive the caller's own window sliding forward as the user types:
with the pipeline's 4000-character prefix window, the last 2000 characters before the
original cursor are still inside the window after up to 2000 typed characters. A change
further away than the windows (an edit hundreds of lines up) does not invalidate an entry;
the suggestion was computed from a model context of a few hundred tokens anyway, and
`invalidate(uri)` exists for callers that want to be stricter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from codet5_lsp.server.lru import LruCache
from codet5_lsp.server.postprocess import AUTO_CLOSERS

PREFIX_KEY_CHARS = 2000
SUFFIX_KEY_CHARS = 500
ANCHOR_CHARS = 32
_OPENER_OF = {")": "(", "]": "[", "}": "{", '"': '"', "'": "'", "`": "`"}


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True)
class _Entry:
    suggestions: tuple[str, ...]  # the best first, then the n-best alternatives
    anchor: str  # the last ANCHOR_CHARS characters of the prefix it was shown at

    def matching(self, typed: str) -> list[str]:
        """The rests of the suggestions that start with `typed`, best first."""
        return [s[len(typed) :] for s in self.suggestions if s.startswith(typed)]


def _typed_lengths(prefix: str, entry: _Entry):
    """Candidate counts of characters typed since `entry` was shown, fewest first.

    `prefix` must be (stored prefix) + (the first `typed` characters of one of the
    suggestions), so the stored prefix's anchor ends `typed` characters before the end of
    `prefix`.
    """
    anchor = entry.anchor
    longest = max(len(s) for s in entry.suggestions)
    n = len(prefix)
    if not anchor:
        if n <= longest and entry.matching(prefix):
            yield n
        return
    low = max(0, n - longest - len(anchor))
    end = n
    while True:
        at = prefix.rfind(anchor, low, end)
        if at < 0:
            return
        typed = n - (at + len(anchor))
        if entry.matching(prefix[n - typed :]):
            yield typed
        end = at + len(anchor) - 1


@dataclass(frozen=True)
class _Key:
    uri: str
    prefix_digest: bytes
    suffix_digest: bytes


class TypeThroughCache:
    """Bounded LRU of suggestions, looked up by what the user typed since they were shown."""

    def __init__(
        self,
        capacity: int = 128,
        prefix_chars: int = PREFIX_KEY_CHARS,
        suffix_chars: int = SUFFIX_KEY_CHARS,
    ):
        if capacity < 1 or prefix_chars < 1 or suffix_chars < 0:
            raise ValueError("need capacity >= 1, prefix_chars >= 1, suffix_chars >= 0")
        self.capacity = capacity
        self.prefix_chars = prefix_chars
        self.suffix_chars = suffix_chars
        self._entries: LruCache[_Key, _Entry] = LruCache(capacity)

    def __len__(self) -> int:
        return len(self._entries)

    def _prefix_digest(self, prefix: str) -> bytes:
        return _digest(prefix[-self.prefix_chars :])

    def _suffix_digest(self, suffix: str) -> bytes:
        return _digest(suffix[: self.suffix_chars])

    def store(
        self,
        uri: str,
        prefix: str,
        suffix: str,
        suggestion: str,
        alternatives: tuple[str, ...] = (),
    ) -> None:
        """Remember `suggestion` (and its n-best `alternatives`), shown with the cursor between
        `prefix` and `suffix`."""
        if not suggestion:
            return
        key = _Key(uri, self._prefix_digest(prefix), self._suffix_digest(suffix))
        anchor = prefix[-min(ANCHOR_CHARS, self.prefix_chars) :]
        kept = tuple(a for a in alternatives if a and a != suggestion)
        self._entries.put(key, _Entry((suggestion, *kept), anchor))

    def lookup(self, uri: str, prefix: str, suffix: str) -> str | None:
        """The rest of the best stored suggestion the user is typing through (see
        `lookup_all`)."""
        found = self.lookup_all(uri, prefix, suffix)
        return found[0] if found else None

    def lookup_all(self, uri: str, prefix: str, suffix: str) -> list[str]:
        """The rest of a stored suggestion the user is typing through (see `_lookup`).

        Typing an opener through (`sum(` of `sum(xs)`) makes most editors insert its closer
        after the cursor, which changes the suffix. So on a miss, up to 3 closers at the
        start of the suffix are set aside and the lookup is retried; a hit counts only when
        the rest of the suggestion ends with those closers, which are then dropped from it
        (the editor already shows them).
        """
        found = self._lookup(uri, prefix, suffix)
        if found is not None:
            return [rest for rest in found[1] if rest]
        closers = len(suffix) - len(suffix.lstrip(AUTO_CLOSERS))
        for k in range(min(closers, 3), 0, -1):
            found = self._lookup(uri, prefix, suffix[k:])
            if found is None:
                continue
            typed, rests = found
            auto = suffix[:k]
            if all(_OPENER_OF[c] in typed for c in auto):
                kept = [rest[:-k] for rest in rests if rest.endswith(auto) and len(rest) > k]
                if kept:
                    return kept
        return []

    def _lookup(self, uri: str, prefix: str, suffix: str) -> tuple[str, list[str]] | None:
        """(typed part, rests) of the stored suggestions if `prefix` = their prefix + typed
        part: every stored suggestion (best first) that starts with the typed part.

        None when nothing stored matches; a rest is "" when that whole suggestion was typed.
        With several matches (a suggestion stored at P and another at P + "a"), the one
        stored at the longest prefix (fewest characters typed since) wins: it is the newest
        knowledge about this spot. Each entry keeps the last `ANCHOR_CHARS` characters of
        its prefix, so the possible typed lengths are found with a string search instead of
        hashing the window once per character of the suggestion.
        """
        suffix_digest = self._suffix_digest(suffix)
        digests: dict[int, bytes] = {}  # typed length -> digest of the prefix before it
        best: tuple[int, _Key, _Entry] | None = None
        for key, entry in self._entries.items():
            if key.uri != uri or key.suffix_digest != suffix_digest:
                continue
            for typed in _typed_lengths(prefix, entry):
                if best is not None and typed >= best[0]:
                    break
                if typed not in digests:
                    digests[typed] = self._prefix_digest(prefix[: len(prefix) - typed])
                if digests[typed] == key.prefix_digest:
                    best = (typed, key, entry)
                    break
        if best is None:
            return None
        typed, key, entry = best
        self._entries.touch(key)
        typed_text = prefix[len(prefix) - typed :]
        return typed_text, entry.matching(typed_text)

    def invalidate(self, uri: str) -> None:
        """Forget every suggestion for `uri` (document closed, or replaced wholesale)."""
        for key in [k for k in self._entries if k.uri == uri]:
            self._entries.discard(key)

    def clear(self) -> None:
        self._entries.clear()
