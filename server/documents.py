"""Document store: the text, line index and tree-sitter tree of every open document.

Why we keep our own copy instead of pygls' workspace: every keystroke must update the text,
the tree (incrementally) and a line index in a few milliseconds, even for 20k-line files,
and positions must be converted exactly in the negotiated encoding.

Per edit the Python work is O(size of the edit + lines between it and the previous edit),
plus one memcpy of the str and an in-place memmove of the UTF-8 bytes: positions convert
through the line index (line -> str offset and UTF-8 byte offset), the index is patched
around the edit (the shift of the lines after it stays pending until an edit elsewhere),
and the tree gets a `Tree.edit`. Re-parsing is incremental (the edited old tree is passed
to the parser) and lazy: it happens on the first access to `Document.tree` after changes,
so a burst of keystrokes between two requests costs one reparse. Request handlers on the
event loop call `await Document.parse_cooperatively()` first: py-tree-sitter holds the GIL
while it parses, so a thread would not help, and one edit (an unclosed `(` near the top of a
20k-line file) can make tree-sitter's error recovery re-parse most of the file (100-200 ms).
The cooperative parse runs in slices of a few milliseconds (tree-sitter resumes a parse
halted by its time limit) and yields to the loop between them, so other messages are served
meanwhile.

Never lose what the user typed: documents that are too large (`max_bytes`) or look binary
(contain NUL, or mostly control characters) are still tracked as text, only flagged
(`too_large` / `binary`) and not parsed (`tree` is None). Lone surrogates (possible in JSON)
are kept in the str and encoded with "surrogatepass" (3 bytes each) for tree-sitter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import warnings
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import tree_sitter
from lsprotocol import types

from codet5_lsp.server import positions as P
from codet5_lsp.server.errors import InvalidParamsError
from codet5_lsp.server.languages import new_parser
from codet5_lsp.server.lru import LruCache
from codet5_lsp.server.positions import InvalidPositionError

__all__ = [
    "ContextCache",
    "Document",
    "DocumentStore",
    "UnknownDocumentError",
    "InvalidPositionError",
]

_LINE_END = re.compile(r"\r\n|\r|\n")
_BINARY_SAMPLE = 4096
_BINARY_CONTROL_RATIO = 0.10
_CONTROL_CHARS = re.compile(r"[\x01-\x08\x0e-\x1a\x1c-\x1f]")  # C0 minus \t\n\v\f\r, ESC


PARSE_SLICE_MICROS = 1500
"""Longest stretch `parse_cooperatively` keeps the event loop (and the GIL) in tree-sitter."""


def _set_parse_time_limit(parser: tree_sitter.Parser, micros: int) -> None:
    """py-tree-sitter 0.25 deprecates `timeout_micros` for a `progress_callback` that its
    `parse` does not accept yet; the limit still works and is what we pin."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        parser.timeout_micros = micros  # type: ignore[misc]  # read-only in the stubs only


# Sizes of the context step's per-document LRUs (entries).
IDENTIFIER_SETS_SIZE = 1024
TOKEN_COUNTS_SIZE = 64
RETRIEVAL_CACHE_SIZE = 2048


@dataclass
class ContextCache:
    """What the context step (server/syntax.py, server/context.py, server/retrieval.py)
    remembers about one document between requests.

    It survives edits: each entry is either keyed by content (the LRUs: the same bytes give
    the same answer wherever they are) or stamped with the `Document.edit_count` it was
    computed at, and its user checks the stamp. A fork (`Document.fork_with_insert`) shares
    the LRUs and copies the rest.
    """

    # chars per token seen in the last budget search (None: none yet)
    chars_per_token: float | None = None
    # the import scan: (edit_count, str offset where the scan stopped, (offset, text) found)
    imports: tuple[int, int, list[tuple[int, str]]] | None = None
    # the indent unit per block of lines around the cursor: block -> (edit_count, unit)
    indent_units: dict[int, tuple[int, str]] = field(default_factory=dict)
    # identifier sets of nearby functions' bytes (the similar-function search)
    identifier_sets: LruCache[bytes, frozenset[bytes]] = field(
        default_factory=lambda: LruCache(IDENTIFIER_SETS_SIZE)
    )
    # token counts of the texts that stay the same between keystrokes, for one tokenizer
    token_counter: object | None = None
    token_counts: LruCache[str, int] = field(default_factory=lambda: LruCache(TOKEN_COUNTS_SIZE))
    # server/retrieval.py: the units of a member / of a top-level item (keyed by their bytes),
    # the identifiers of a unit line, and this document's index of definitions for others
    retrieval_members: LruCache[tuple[Any, ...], list[Any]] = field(
        default_factory=lambda: LruCache(RETRIEVAL_CACHE_SIZE)
    )
    retrieval_items: LruCache[tuple[Any, ...], list[Any]] = field(
        default_factory=lambda: LruCache(RETRIEVAL_CACHE_SIZE)
    )
    line_identifiers: LruCache[str, frozenset[bytes]] = field(
        default_factory=lambda: LruCache(RETRIEVAL_CACHE_SIZE)
    )
    definition_index: tuple[int, dict[bytes, list[Any]]] | None = None
    # a cooperative parse started for the definition index (never shared with a fork)
    background_parse: asyncio.Task[Any] | None = None

    def copy(self) -> "ContextCache":
        """A copy to put back later (the LRUs are shared: they hold content-keyed facts)."""
        return dataclasses.replace(self, indent_units=dict(self.indent_units))

    def for_fork(self) -> "ContextCache":
        """The copy a forked document starts with: no background parse of this one's."""
        return dataclasses.replace(self.copy(), background_parse=None)


class UnknownDocumentError(KeyError, InvalidParamsError):
    """A request or change for a URI that is not open (no didOpen, or already closed)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown document"


def looks_binary(text: str) -> bool:
    """NUL anywhere, or more than 10% C0 control characters in the first 4 KiB."""
    if "\x00" in text:
        return True
    sample = text[:_BINARY_SAMPLE]
    if not sample:
        return False
    return len(_CONTROL_CHARS.findall(sample)) > _BINARY_CONTROL_RATIO * len(sample)


def _count_lone_cr(text: str, first: int, last: int) -> int:
    """Lone "\\r" (not followed by "\\n") at positions first..last inclusive."""
    first = max(first, 0)
    count = 0
    index = text.find("\r", first, last + 1)
    while index >= 0:
        if index + 1 >= len(text) or text[index + 1] != "\n":
            count += 1
        index = text.find("\r", index + 1, last + 1)
    return count


def _position_parts(position: object) -> tuple[int, int]:
    """(line, character) of an lsprotocol Position, a (line, character) tuple or a dict."""
    if isinstance(position, tuple):
        return int(position[0]), int(position[1])
    if isinstance(position, dict):
        return int(position["line"]), int(position["character"])
    return int(position.line), int(position.character)  # type: ignore[attr-defined]


def _change_parts(change: object) -> tuple[object | None, str]:
    """(range or None for a whole-document change, new text) of a content change."""
    if isinstance(change, dict):
        return change.get("range"), change["text"]
    return getattr(change, "range", None), change.text  # type: ignore[attr-defined]


def _range_parts(rng: object) -> tuple[object, object]:
    if isinstance(rng, dict):
        return rng["start"], rng["end"]
    return rng.start, rng.end  # type: ignore[attr-defined]


class Document:
    """One open document: text + line index + (lazily re-parsed) tree-sitter tree."""

    def __init__(
        self,
        uri: str,
        text: str,
        language_id: str,
        version: int,
        encoding: str = P.UTF16,
        max_bytes: int = 2_000_000,
    ):
        self.uri = uri
        self.language_id = language_id
        self.version = version
        self.encoding = P.normalize_encoding(encoding)
        self.too_large = False
        self.binary = False
        self._parser: tree_sitter.Parser | None = new_parser(language_id)
        self._tree: tree_sitter.Tree | None = None
        self._tree_stale = False
        # The parser holds a parse halted at its time limit (see parse_cooperatively); it must
        # be reset before the parser is used for anything else.
        self._parse_halted = False
        self._parse_deferred = False
        self._finisher: asyncio.Task[tree_sitter.Tree | None] | None = None
        # What the context step remembers about this document across edits.
        self.context_cache = ContextCache()
        # Edit log: lets derived data that depends only on text before some offset (the
        # imports at the top) survive edits further down.
        self.edit_count = 0
        self._edit_log: deque[tuple[int, int]] = deque(maxlen=256)
        self._set_text(text, max_bytes)

    # ---- text and index -------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._text

    @property
    def source_bytes(self) -> bytearray:
        """The UTF-8 ("surrogatepass") bytes tree-sitter parses. Edited in place: do not
        keep it across edits (slice it, or copy with bytes())."""
        return self._bytes

    @property
    def line_count(self) -> int:
        return len(self._starts)

    @property
    def parseable(self) -> bool:
        return self._parser is not None and not self.too_large and not self.binary

    @property
    def tree(self) -> tree_sitter.Tree | None:
        """The syntax tree of the current text (None: unknown language, too large, binary,
        or a long re-parse still running in slices: see `parse_cooperatively`)."""
        if self._tree_stale:
            if self._parse_deferred:
                return None  # being parsed in slices (parse_cooperatively): do not block
            self._reparse()
        return self._tree

    def _set_text(self, text: str, max_bytes: int) -> None:
        self._log_edit(0)
        self._text = text
        self._bytes = bytearray(P.encode_utf8(text))
        self._starts = P.line_starts(text)
        self._byte_starts = self._byte_starts_for(self._starts)
        self._reset_shift()
        self._lone_cr = _count_lone_cr(text, 0, len(text) - 1)
        self._tree = None
        self._update_flags(max_bytes)
        self._tree_stale = self.parseable

    def _log_edit(self, start: int) -> None:
        self.edit_count += 1
        self._edit_log.append((self.edit_count, start))

    def first_edit_offset_since(self, mark: int) -> int | None:
        """Smallest str offset (in the current text) where the text may differ from when
        `edit_count` was `mark`; None if it has not changed. Offsets before it are stable."""
        if mark >= self.edit_count:
            return None
        if self.edit_count - mark > len(self._edit_log):
            return 0
        return min(start for number, start in self._edit_log if number > mark)

    def _byte_starts_for(self, starts: Sequence[int]) -> list[int]:
        text = self._text
        if text.isascii():
            return list(starts)
        out = [0]
        for previous, start in zip(starts, starts[1:]):
            out.append(out[-1] + len(P.encode_utf8(text[previous:start])))
        return out

    # The line index is two lists (str and byte offsets of line starts). Shifting every
    # entry after an edit is O(lines), so the shift is kept pending instead: entries from
    # index `_shift_from` on are stored without `_shift_chars`/`_shift_bytes`. The next
    # edit materializes only the entries between the pending boundary and itself, which is
    # O(1) while typing in one place.
    def _reset_shift(self) -> None:
        self._shift_from = len(self._starts)
        self._shift_chars = 0
        self._shift_bytes = 0

    def _start(self, line: int) -> int:
        raw = self._starts[line]
        return raw + self._shift_chars if line >= self._shift_from else raw

    def _byte_start(self, line: int) -> int:
        raw = self._byte_starts[line]
        return raw + self._shift_bytes if line >= self._shift_from else raw

    def _line_of_offset(self, offset: int) -> int:
        k, starts = self._shift_from, self._starts
        if k >= len(starts) or offset < starts[k] + self._shift_chars:
            return bisect_right(starts, offset, 0, k) - 1
        return bisect_right(starts, offset - self._shift_chars, k) - 1

    def _line_of_byte(self, byte_offset: int) -> int:
        k, starts = self._shift_from, self._byte_starts
        if k >= len(starts) or byte_offset < starts[k] + self._shift_bytes:
            return bisect_right(starts, byte_offset, 0, k) - 1
        return bisect_right(starts, byte_offset - self._shift_bytes, k) - 1

    def _first_start_at_or_after(self, offset: int) -> int:
        k, starts = self._shift_from, self._starts
        if k >= len(starts) or offset <= starts[k] + self._shift_chars:
            return bisect_left(starts, offset, 0, k)
        return bisect_left(starts, offset - self._shift_chars, k)

    def _materialize(self, first: int, last: int, chars: int, byte_delta: int) -> None:
        """Add (chars, byte_delta) to the raw entries first..last-1."""
        if last <= first or (chars == 0 and byte_delta == 0):
            return
        if chars:
            self._starts[first:last] = [v + chars for v in self._starts[first:last]]
        if byte_delta:
            self._byte_starts[first:last] = [v + byte_delta for v in self._byte_starts[first:last]]

    def _flush_shift(self) -> None:
        self._materialize(self._shift_from, len(self._starts), self._shift_chars, self._shift_bytes)
        self._reset_shift()

    def _content_end(self, line: int) -> int:
        text = self._text
        start = self._start(line)
        end = self._start(line + 1) if line + 1 < len(self._starts) else len(text)
        if end > start and text[end - 1] == "\n":
            end -= 1
        if end > start and text[end - 1] == "\r":
            end -= 1
        return end

    def _update_flags(self, max_bytes: int) -> None:
        was_parseable = self.parseable
        self.too_large = len(self._bytes) > max_bytes
        self.binary = looks_binary(self._text)
        if not self.parseable:
            self._tree = None
            self._tree_stale = False
        elif not was_parseable:
            self._tree = None
            self._tree_stale = True

    def _reparse(self) -> None:
        self._tree_stale = False
        if not self.parseable:
            self._tree = None
            return
        self._tree = self._parse_step(0)

    def _parse_step(self, limit_micros: int) -> tree_sitter.Tree | None:
        """One call into tree-sitter: the new tree, or None when it stopped at the time limit
        (it resumes where it stopped on the next call with the same text and old tree)."""
        parser = self._parser
        assert parser is not None
        if self._parse_halted and limit_micros == 0:
            parser.reset()  # a synchronous parse after an abandoned cooperative one
            self._parse_halted = False
        _set_parse_time_limit(parser, limit_micros)
        try:
            tree = (
                parser.parse(self._bytes, self._tree)
                if self._tree is not None
                else parser.parse(self._bytes)
            )
        except ValueError:  # 0.25.2 raises "Parsing failed" when the time limit stops it
            if limit_micros == 0:
                raise
            self._parse_halted = True
            return None
        self._parse_halted = False
        return tree

    def parse(self) -> tree_sitter.Tree | None:
        """Re-parse now if the text changed since the last parse (normally lazy)."""
        return self.tree

    async def parse_cooperatively(
        self, slice_micros: int = PARSE_SLICE_MICROS, budget_s: float | None = None
    ) -> tree_sitter.Tree | None:
        """Bring the tree up to date without holding the event loop for more than about
        `slice_micros` at a time, and return it. Edits that arrive between slices restart the
        parse from the edited tree, so the result is always the tree of the current text.
        Several callers may await it at once for the same document.

        With `budget_s`, give up waiting after that long and return None: the parse then
        finishes in a background task, and until it does `tree` is None instead of blocking
        (callers fall back to plain text). Error recovery after an unclosed bracket can make
        one re-parse take seconds on a long file; completions must not wait for that."""
        loop = asyncio.get_running_loop()
        give_up = None if budget_s is None else loop.time() + budget_s
        while self._tree_stale and self.parseable:
            if give_up is not None and loop.time() >= give_up:
                self._defer_parse()
                return None
            edits = self.edit_count
            tree = self._parse_step(slice_micros)
            if tree is not None:
                self._tree, self._tree_stale = tree, False
                break
            await asyncio.sleep(0)  # let the loop read and answer other messages
            if self.edit_count != edits and self._parse_halted:
                assert self._parser is not None
                self._parser.reset()  # the text changed under the halted parse
                self._parse_halted = False
        self._parse_deferred = False
        return self.tree

    def _defer_parse(self) -> None:
        self._parse_deferred = True
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.get_running_loop().create_task(
                self.parse_cooperatively(), name=f"parse {self.uri}"
            )

    @property
    def tree_is_current(self) -> bool:
        """The tree matches the text (reading `tree` will not parse)."""
        return not self._tree_stale

    @property
    def parse_pending(self) -> bool:
        """A cooperative parse is finishing in the background; `tree` is None until then."""
        return self._parse_deferred and self._tree_stale

    def close(self) -> None:
        """Stop a background parse (the document was closed)."""
        if self._finisher is not None:
            self._finisher.cancel()
            self._finisher = None

    # ---- conversions ----------------------------------------------------------------
    def offset_at(self, position: object) -> int:
        """str offset of an LSP position (object with .line/.character, or a tuple)."""
        line, character = _position_parts(position)
        if line < 0 or line >= len(self._starts):
            raise InvalidPositionError(
                f"line {line} is outside {self.uri} (it has {len(self._starts)} lines, 0-based)"
            )
        if character < 0:
            raise InvalidPositionError(f"negative character {character} on line {line}")
        start = self._start(line)
        end = self._content_end(line)
        if self.encoding == P.UTF32 or character == 0:
            return start + min(character, end - start)
        return start + P.column_to_index(self._text[start:end], character, self.encoding)

    def byte_offset_of(self, offset: int) -> int:
        """UTF-8 byte offset of a str offset."""
        if offset < 0 or offset > len(self._text):
            raise InvalidPositionError(
                f"offset {offset} is outside {self.uri} (0..{len(self._text)})"
            )
        line = self._line_of_offset(offset)
        segment = self._text[self._start(line) : offset]
        width = len(segment) if segment.isascii() else len(P.encode_utf8(segment))
        return self._byte_start(line) + width

    def byte_offset_at(self, position: object) -> int:
        """UTF-8 byte offset of an LSP position."""
        return self.byte_offset_of(self.offset_at(position))

    def offset_of_byte(self, byte_offset: int) -> int:
        """str offset of a UTF-8 byte offset (a byte inside a char maps to its start)."""
        data = self._bytes
        if byte_offset < 0 or byte_offset > len(data):
            raise InvalidPositionError(f"byte offset {byte_offset} is outside 0..{len(data)}")
        while 0 < byte_offset < len(data) and (data[byte_offset] & 0xC0) == 0x80:
            byte_offset -= 1
        line = self._line_of_byte(byte_offset)
        segment = data[self._byte_start(line) : byte_offset]
        width = (
            len(segment) if segment.isascii() else len(segment.decode("utf-8", P.SURROGATE_ERRORS))
        )
        return self._start(line) + width

    def position_at(self, offset: int) -> types.Position:
        """LSP position of a str offset (in the document's encoding). An offset between
        "\\r" and "\\n" maps to the end of that line's content."""
        if offset < 0 or offset > len(self._text):
            raise InvalidPositionError(
                f"offset {offset} is outside {self.uri} (0..{len(self._text)})"
            )
        line = self._line_of_offset(offset)
        start = self._start(line)
        offset = min(offset, self._content_end(line))
        character = P.index_to_column(self._text[start:offset], offset - start, self.encoding)
        return types.Position(line=line, character=character)

    def point_of(self, offset: int) -> tuple[int, int]:
        """tree-sitter point (row, byte column) of a str offset."""
        byte_offset = self.byte_offset_of(offset)
        if self._lone_cr == 0:  # LSP lines and tree-sitter rows coincide
            line = self._line_of_offset(offset)
            return line, byte_offset - self._byte_start(line)
        data = self._bytes
        return data.count(b"\n", 0, byte_offset), byte_offset - (
            data.rfind(b"\n", 0, byte_offset) + 1
        )

    def line_starts_between(self, low: int, high: int) -> list[int]:
        """str offsets of the line starts s with low <= s <= high, ascending."""
        self._flush_shift()
        return self._starts[bisect_left(self._starts, low) : bisect_right(self._starts, high)]

    def line_of(self, offset: int) -> int:
        """LSP line containing str `offset` (a line's terminator belongs to it)."""
        return self._line_of_offset(offset)

    def line_start(self, line: int) -> int:
        """str offset where `line` starts."""
        self._check_line(line)
        return self._start(line)

    def line_end(self, line: int) -> int:
        """str offset of the end of `line`'s content (before its terminator)."""
        self._check_line(line)
        return self._content_end(line)

    def line_text(self, line: int) -> str:
        """Text of `line` without its terminator."""
        self._check_line(line)
        return self._text[self._start(line) : self._content_end(line)]

    def lines(self, first: int, last: int) -> Iterator[str]:
        """Texts of lines first..last-1 (clamped to the document)."""
        for line in range(max(first, 0), min(last, len(self._starts))):
            yield self.line_text(line)

    def _check_line(self, line: int) -> None:
        if line < 0 or line >= len(self._starts):
            raise InvalidPositionError(
                f"line {line} is outside {self.uri} (it has {len(self._starts)} lines)"
            )

    # ---- hypothetical copies -----------------------------------------------------------
    def fork_with_insert(self, offset: int, text: str) -> "Document":
        """A separate copy of this document with `text` inserted at str `offset`.

        For speculation (server/speculation.py): the document as it would be if the user
        accepted a suggestion and pressed Enter. The copy's tree is this tree's `copy()` with
        the insertion applied through the normal incremental edit path, so bringing it up to
        date is an incremental re-parse (ms), not a full parse; the original is untouched.
        The context step's cache is shared except a running background parse (its entries
        are keyed by content or stamped with `edit_count`, valid for the copy)."""
        if offset < 0 or offset > len(self._text):
            raise InvalidPositionError(
                f"offset {offset} is outside {self.uri} (0..{len(self._text)})"
            )
        fork = Document.__new__(Document)
        fork.uri = self.uri
        fork.language_id = self.language_id
        fork.version = self.version
        fork.encoding = self.encoding
        fork.too_large = self.too_large
        fork.binary = self.binary
        fork._parser = new_parser(self.language_id) if self.parseable else None
        fork._tree = self._tree.copy() if self._tree is not None else None
        fork._tree_stale = self._tree_stale
        fork._parse_halted = False
        fork._parse_deferred = False
        fork._finisher = None
        fork.context_cache = self.context_cache.for_fork()
        fork.edit_count = self.edit_count
        fork._edit_log = deque(self._edit_log, maxlen=self._edit_log.maxlen)
        fork._text = self._text
        fork._bytes = bytearray(self._bytes)
        fork._starts = list(self._starts)
        fork._byte_starts = list(self._byte_starts)
        fork._shift_from = self._shift_from
        fork._shift_chars = self._shift_chars
        fork._shift_bytes = self._shift_bytes
        fork._lone_cr = self._lone_cr
        if text:
            fork._replace(offset, offset, text)
        return fork

    # ---- edits ------------------------------------------------------------------------
    def apply_changes(self, version: int, changes: Sequence[object], max_bytes: int) -> None:
        """Apply didChange content changes in order (partial ranges or whole text)."""
        try:
            for change in changes:
                rng, new_text = _change_parts(change)
                if rng is None:
                    self._set_text(new_text, max_bytes)
                else:
                    self._apply_edit(rng, new_text)
            self.version = version
        finally:  # a bad position mid-batch: keep what was applied consistent
            self._update_flags(max_bytes)

    def _apply_edit(self, rng: object, new_text: str) -> None:
        start_position, end_position = _range_parts(rng)
        start = self.offset_at(start_position)
        end = self.offset_at(end_position)
        if end < start:  # a reversed range: treat it as the same span
            start, end = end, start
        self._replace(start, end, new_text)

    def _replace(self, start: int, end: int, new_text: str) -> None:
        """Replace text[start:end] (str offsets) and keep index and tree in step."""
        old_text = self._text
        start_byte, end_byte = self.byte_offset_of(start), self.byte_offset_of(end)
        self._log_edit(start)
        keep_tree = self._tree is not None
        if keep_tree:
            start_point, old_end_point = self.point_of(start), self.point_of(end)
        new_bytes = P.encode_utf8(new_text)
        removed_lone_cr = _count_lone_cr(old_text, start - 1, end)
        text = "".join((old_text[:start], new_text, old_text[end:]))
        self._text = text
        self._bytes[start_byte:end_byte] = new_bytes  # in place: a memmove, no new 1 MB copy
        self._patch_line_index(start, end, new_text, start_byte, end_byte, len(new_bytes))
        new_end = start + len(new_text)
        self._lone_cr += _count_lone_cr(text, start - 1, new_end) - removed_lone_cr
        if keep_tree:
            assert self._tree is not None
            self._tree.edit(
                start_byte=start_byte,
                old_end_byte=end_byte,
                new_end_byte=start_byte + len(new_bytes),
                start_point=start_point,
                old_end_point=old_end_point,
                new_end_point=self.point_of(new_end),
            )
            self._tree_stale = True

    def _patch_line_index(
        self,
        start: int,
        end: int,
        new_text: str,
        start_byte: int,
        end_byte: int,
        new_len_bytes: int,
    ) -> None:
        """Line starts < start are kept, those > end shifted, the ones between re-scanned.

        A line start p depends on text[p-1] and text[p] only ("\\r\\n" is one terminator),
        so only starts in [start, start+len(new_text)] of the new text can differ. Called
        after the text is replaced; the index still describes the old text.
        """
        starts, byte_starts, text = self._starts, self._byte_starts, self._text
        low = self._first_start_at_or_after(max(start, 1))  # line 0 always starts at 0
        high = self._first_start_at_or_after(end + 1)
        new_end = start + len(new_text)
        middle: list[int] = []
        middle_bytes: list[int] = []
        last_offset, last_byte = start, start_byte
        for match in _LINE_END.finditer(text, max(start - 1, 0), min(new_end + 1, len(text))):
            line_start = match.end()
            if start <= line_start <= new_end and line_start > 0:
                segment = text[last_offset:line_start]
                last_byte += len(segment) if segment.isascii() else len(P.encode_utf8(segment))
                last_offset = line_start
                middle.append(line_start)
                middle_bytes.append(last_byte)
        delta = len(new_text) - (end - start)
        delta_bytes = new_len_bytes - (end_byte - start_byte)
        k, pending_chars, pending_bytes = (self._shift_from, self._shift_chars, self._shift_bytes)
        if pending_chars == 0 and pending_bytes == 0:
            k = high  # nothing pending: the boundary can move here for free
        if k <= low:
            # entries k..low-1 become real; the whole tail carries the old shift too
            self._materialize(k, low, pending_chars, pending_bytes)
            new_from = low + len(middle)
        elif k <= high:
            new_from = low + len(middle)  # the pending zone started inside the edit
        else:
            # entries high..k-1 had no pending shift: give them this edit's shift now
            self._materialize(high, k, delta, delta_bytes)
            new_from = k - (high - low) + len(middle)
        starts[low:high] = middle
        byte_starts[low:high] = middle_bytes
        self._shift_from = new_from
        self._shift_chars = pending_chars + delta
        self._shift_bytes = pending_bytes + delta_bytes
        if self._shift_from >= len(starts):
            self._reset_shift()


class DocumentStore:
    """All open documents by URI. `encoding` follows the negotiated position encoding."""

    def __init__(self, encoding: str = "utf-16", max_bytes: int = 2_000_000):
        self._encoding = P.normalize_encoding(encoding)
        self.max_bytes = max_bytes
        self._documents: dict[str, Document] = {}

    @property
    def encoding(self) -> str:
        return self._encoding

    @encoding.setter
    def encoding(self, value: object) -> None:
        self._encoding = P.normalize_encoding(value)
        for document in self._documents.values():
            document.encoding = self._encoding

    def open(self, uri: str, text: str, language_id: str, version: int) -> Document:
        """Track a document (re-opening a URI replaces it)."""
        document = Document(uri, text, language_id, version, self._encoding, self.max_bytes)
        self._documents[uri] = document
        return document

    def change(self, uri: str, version: int, changes: Sequence[object]) -> Document:
        """Apply didChange content changes in order; returns the updated document."""
        document = self.get(uri)
        document.encoding = self._encoding
        document.apply_changes(version, changes, self.max_bytes)
        return document

    def close(self, uri: str) -> None:
        """Forget a document (no error if it is not open: closing is idempotent)."""
        doc = self._documents.pop(uri, None)
        if doc is not None:
            doc.close()

    def get(self, uri: str) -> Document:
        try:
            return self._documents[uri]
        except KeyError:
            raise UnknownDocumentError(f"document {uri} is not open") from None

    def __contains__(self, uri: object) -> bool:
        return uri in self._documents

    def __len__(self) -> int:
        return len(self._documents)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._documents))
