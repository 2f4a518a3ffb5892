"""Conversions between LSP positions, str offsets, UTF-8 byte offsets and tree-sitter points.

Why a module of its own: every request and every edit crosses these coordinate systems, and
getting one of them wrong silently corrupts the document copy (the server then completes
against text the user does not see). Everything here is a pure function over a text and its
line index, so it can be tested with tables.

Coordinate systems
- LSP position: (line, character). Lines end at "\\r\\n", "\\r" or "\\n" (all three, as the
  LSP spec says). `character` counts code units of the negotiated position encoding:
  "utf-16" (default: astral chars such as emoji count 2), "utf-8" (bytes) or "utf-32"
  (code points, the same as Python str indices).
- str offset: index into the Python `str`.
- byte offset: index into the UTF-8 encoding of the text (what tree-sitter sees).
- tree-sitter point: (row, byte column). tree-sitter counts rows at "\\n" only, so a lone
  "\\r" starts an LSP line but not a tree-sitter row; `point_at` handles that.

Rules for positions that do not name a character exactly
- `character` beyond the line's length means the end of the line (LSP spec), i.e. just before
  its line terminator.
- `line` beyond the last line, or a negative line/character, raises `InvalidPositionError`.
- A `character` that falls inside one character (the second UTF-16 unit of a surrogate pair,
  a middle byte of a multi-byte UTF-8 sequence) is clamped to the start of that character.

Lone surrogates (a JSON string may carry "\\ud800" alone) are encoded with "surrogatepass":
each one is 3 UTF-8 bytes and 1 UTF-16 unit, like any other BMP char, so every str char
keeps a fixed width in every encoding and the text the user typed is never altered.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Sequence

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"
ENCODINGS = (UTF8, UTF16, UTF32)
SURROGATE_ERRORS = "surrogatepass"

_LINE_END = re.compile(r"\r\n|\r|\n")


class InvalidPositionError(ValueError):
    """A position or offset that does not exist in the document (e.g. a line past the end)."""


def normalize_encoding(value: object) -> str:
    """"utf-8" / "utf-16" / "utf-32" from a string, an lsprotocol PositionEncodingKind or None.

    Accepts enum members (their `.value`) and spellings like "UTF16" or
    "PositionEncodingKind.Utf16", because `str()` of a str-Enum differs across Pythons.
    None means the LSP default, UTF-16. Anything else raises ValueError.
    """
    if value is None:
        return UTF16
    raw = getattr(value, "value", value)
    key = str(raw).rsplit(".", 1)[-1].lower().replace("-", "").replace("_", "")
    mapping = {"utf8": UTF8, "utf16": UTF16, "utf32": UTF32}
    if key not in mapping:
        raise ValueError(f"unknown position encoding {value!r}; expected one of {ENCODINGS}")
    return mapping[key]


def encode_utf8(text: str) -> bytes:
    """UTF-8 bytes of `text`; lone surrogates pass through as 3 bytes (see module doc)."""
    return text.encode(UTF8, SURROGATE_ERRORS)


def char_width(char: str, encoding: str) -> int:
    """Code units of one str char in `encoding`."""
    cp = ord(char)
    if encoding == UTF16:
        return 2 if cp > 0xFFFF else 1
    if encoding == UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 1


def units_length(text: str, encoding: str) -> int:
    """Length of `text` in code units of `encoding`."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(encode_utf8(text))
    return len(text.encode("utf-16-le", SURROGATE_ERRORS)) // 2


def line_starts(text: str) -> list[int]:
    """str offsets where each LSP line starts; always begins with 0 (an empty text has 1 line)."""
    return [0] + [m.end() for m in _LINE_END.finditer(text)]


def line_content_end(text: str, starts: Sequence[int], line: int) -> int:
    """str offset of the end of `line`'s content (before its terminator)."""
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    if end > starts[line] and text[end - 1] == "\n":
        end -= 1
    if end > starts[line] and text[end - 1] == "\r":
        end -= 1
    return end


def column_to_index(line_text: str, character: int, encoding: str) -> int:
    """str index in `line_text` for `character` code units; clamps past-the-end and mid-char."""
    if character < 0:
        raise InvalidPositionError(f"negative character {character}")
    if encoding == UTF32 or line_text.isascii():
        return min(character, len(line_text))
    used = 0
    for index, char in enumerate(line_text):
        used += char_width(char, encoding)
        if used > character:
            return index  # inside or just before this char: its start
    return len(line_text)


def index_to_column(line_text: str, index: int, encoding: str) -> int:
    """Code units of `encoding` in `line_text[:index]`."""
    return units_length(line_text[:index], encoding)


def line_of_offset(starts: Sequence[int], offset: int) -> int:
    """The LSP line that contains str `offset` (a line terminator belongs to its line)."""
    return bisect_right(starts, offset) - 1


def offset_at(text: str, starts: Sequence[int], line: int, character: int,
              encoding: str = UTF16) -> int:
    """str offset of the LSP position (line, character) in `text` whose line index is `starts`."""
    if line < 0 or line >= len(starts):
        raise InvalidPositionError(
            f"line {line} is outside the document (it has {len(starts)} lines, 0-based)")
    if character < 0:
        raise InvalidPositionError(f"negative character {character} on line {line}")
    start = starts[line]
    end = line_content_end(text, starts, line)
    return start + column_to_index(text[start:end], character, encoding)


def position_at(text: str, starts: Sequence[int], offset: int,
                encoding: str = UTF16) -> tuple[int, int]:
    """LSP (line, character) of str `offset`. An offset between "\\r" and "\\n" maps to the
    end of that line's content, since no LSP position names it."""
    if offset < 0 or offset > len(text):
        raise InvalidPositionError(f"offset {offset} is outside the document (0..{len(text)})")
    line = line_of_offset(starts, offset)
    start = starts[line]
    offset = min(offset, line_content_end(text, starts, line))
    return line, index_to_column(text[start:offset], offset - start, encoding)


def byte_offset_of(text: str, offset: int) -> int:
    """UTF-8 byte offset of str `offset` (O(offset); `Document` uses its line index instead)."""
    return len(encode_utf8(text[:offset]))


def str_offset_of_byte(text: str, byte_offset: int) -> int:
    """str offset of a UTF-8 byte offset; a byte inside a char maps to that char's start."""
    data = encode_utf8(text)
    if byte_offset < 0 or byte_offset > len(data):
        raise InvalidPositionError(f"byte offset {byte_offset} is outside 0..{len(data)}")
    while byte_offset > 0 and byte_offset < len(data) and (data[byte_offset] & 0xC0) == 0x80:
        byte_offset -= 1  # a continuation byte: back up to the lead byte
    return len(data[:byte_offset].decode(UTF8, SURROGATE_ERRORS))


def point_at(text: str, offset: int) -> tuple[int, int]:
    """tree-sitter point (row, byte column) of str `offset`: rows count "\\n" only."""
    row = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return row, len(encode_utf8(text[line_start:offset]))


def lsp_to_point(text: str, starts: Sequence[int], line: int, character: int,
                 encoding: str = UTF16) -> tuple[int, int]:
    """tree-sitter point of an LSP position."""
    return point_at(text, offset_at(text, starts, line, character, encoding))


def point_to_lsp(text: str, starts: Sequence[int], point: tuple[int, int],
                 encoding: str = UTF16) -> tuple[int, int]:
    """LSP position of a tree-sitter point (row, byte column)."""
    row, column = point
    if row < 0 or column < 0:
        raise InvalidPositionError(f"invalid point {point}")
    row_start = 0
    for _ in range(row):
        nl = text.find("\n", row_start)
        if nl < 0:
            raise InvalidPositionError(f"row {row} is outside the document")
        row_start = nl + 1
    row_end = text.find("\n", row_start)
    row_text = text[row_start:len(text) if row_end < 0 else row_end]
    index = column_to_index(row_text, column, UTF8)
    return position_at(text, starts, row_start + index, encoding)
