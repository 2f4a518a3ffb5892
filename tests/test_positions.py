"""Position helpers: line starts, encodings and code-unit widths (the conversions through a
document's line index are tested in test_documents.py)."""

from __future__ import annotations

import pytest
from lsprotocol import types

from codet5_lsp.server import positions as P

# "a😀b": the emoji is 1 str char, 2 UTF-16 units, 4 UTF-8 bytes.
EMOJI = "a😀b\n中文\tx\r\ny\rz"
STARTS = P.line_starts(EMOJI)


def test_line_starts_count_crlf_cr_and_lf():
    assert P.line_starts("") == [0]
    assert P.line_starts("a\r\nb\rc\nd") == [0, 3, 5, 7]
    assert P.line_starts("a\n") == [0, 2]
    assert P.line_starts("\r\r\n\n") == [0, 1, 3, 4]
    assert STARTS == [0, 4, 10, 12]


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, "utf-16"),
        ("utf-8", "utf-8"),
        ("UTF-32", "utf-32"),
        (types.PositionEncodingKind.Utf16, "utf-16"),
        (types.PositionEncodingKind.Utf8, "utf-8"),
        ("PositionEncodingKind.Utf32", "utf-32"),
    ],
)
def test_normalize_encoding(value, expected):
    assert P.normalize_encoding(value) == expected


def test_unknown_encoding_is_rejected():
    with pytest.raises(ValueError, match="latin-1"):
        P.normalize_encoding("latin-1")


def test_lone_surrogate_has_a_fixed_width():
    text = "a\ud800b"
    assert P.units_length(text, "utf-16") == 3
    assert P.units_length(text, "utf-8") == 5
