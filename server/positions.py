"""Conversions between LSP positions, str offsets, UTF-8 byte offsets and tree-sitter points.

Why a module of its own: every request and every edit crosses these coordinate systems, and
getting one of them wrong silently corrupts the document copy (the server then completes
against text the user does not see). Everything here is a pure function (of a text, a line
or a character), so it can be tested with tables; `Document` applies them through its line
index.

Coordinate systems
- LSP position: (line, character). Lines end at "\\r\\n", "\\r" or "\\n" (all three, as the
  LSP spec says). `character` counts code units of the negotiated position encoding:
  "utf-16" (default: astral chars such as emoji count 2), "utf-8" (bytes) or "utf-32"
  (code points, the same as Python str indices).
- str offset: index into the Python `str`.
- byte offset: index into the UTF-8 encoding of the text (what tree-sitter sees).
- tree-sitter point: (row, byte column). tree-sitter counts rows at "\\n" only, so a lone
  "\\r" starts an LSP line but not a tree-sitter row (`Document` counts them).

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

from codet5_lsp.server.errors import InvalidParamsError

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"
ENCODINGS = (UTF8, UTF16, UTF32)
SURROGATE_ERRORS = "surrogatepass"

_LINE_END = re.compile(r"\r\n|\r|\n")


class InvalidPositionError(ValueError, InvalidParamsError):
    """A position or offset that does not exist in the document (e.g. a line past the end)."""


def normalize_encoding(value: object) -> str:
    """ "utf-8" / "utf-16" / "utf-32" from a string, an lsprotocol PositionEncodingKind or None.

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
