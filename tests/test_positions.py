"""Position conversions: tables of LSP positions <-> str offsets <-> bytes <-> points, as the
server runs them (Document's line index), and the helpers under them (line starts,
encodings, code-unit widths)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lsprotocol import types

from codet5_lsp.server import positions as P
from codet5_lsp.server.documents import Document, DocumentStore
from codet5_lsp.server.positions import InvalidPositionError

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


# ---- The conversions as the server runs them: Document, over the tables ----------------------


def _document(encoding: str, text: str = EMOJI) -> Document:
    return DocumentStore(encoding).open("file:///emoji.txt", text, "plaintext", 1)


@pytest.mark.parametrize(
    "line,character,encoding,offset",
    [
        # line 0: "a😀b"
        (0, 0, "utf-16", 0), (0, 1, "utf-16", 1), (0, 2, "utf-16", 1),  # mid surrogate pair
        (0, 3, "utf-16", 2), (0, 4, "utf-16", 3), (0, 99, "utf-16", 3),  # past end: line end
        (0, 1, "utf-8", 1), (0, 3, "utf-8", 1), (0, 5, "utf-8", 2), (0, 6, "utf-8", 3),
        (0, 2, "utf-32", 2), (0, 3, "utf-32", 3), (0, 4, "utf-32", 3),
        # line 1: "中文\tx" then "\r\n"
        (1, 1, "utf-16", 5), (1, 2, "utf-16", 6), (1, 3, "utf-16", 7), (1, 5, "utf-16", 8),
        (1, 3, "utf-8", 5), (1, 4, "utf-8", 5), (1, 6, "utf-8", 6), (1, 7, "utf-8", 7),
        (1, 50, "utf-8", 8),  # not inside "\r\n"
        # line 2: "y" then lone "\r"; line 3: "z"
        (2, 1, "utf-16", 11), (2, 9, "utf-16", 11), (3, 0, "utf-16", 12), (3, 1, "utf-32", 13),
    ],
)  # fmt: skip
def test_offset_at_table(line, character, encoding, offset):
    position = types.Position(line=line, character=character)
    assert _document(encoding).offset_at(position) == offset


@pytest.mark.parametrize(
    "offset,encoding,expected",
    [
        (0, "utf-16", (0, 0)), (2, "utf-16", (0, 3)), (2, "utf-8", (0, 5)),
        (2, "utf-32", (0, 2)), (3, "utf-16", (0, 4)), (4, "utf-16", (1, 0)),
        (6, "utf-8", (1, 6)), (8, "utf-16", (1, 4)),
        (9, "utf-16", (1, 4)),  # between "\r" and "\n": end of content
        (11, "utf-16", (2, 1)), (13, "utf-16", (3, 1)),
    ],
)  # fmt: skip
def test_position_at_table(offset, encoding, expected):
    position = _document(encoding).position_at(offset)
    assert (position.line, position.character) == expected


@pytest.mark.parametrize("encoding", P.ENCODINGS)
def test_round_trip_every_offset(encoding):
    doc = _document(encoding)
    for offset in range(len(EMOJI) + 1):
        if EMOJI[offset - 1 : offset + 1] == "\r\n":
            continue  # no LSP position names the gap inside "\r\n"
        assert doc.offset_at(doc.position_at(offset)) == offset


@pytest.mark.parametrize("line,character", [(4, 0), (-1, 0), (0, -1), (100, 3)])
def test_invalid_positions_raise(line, character):
    with pytest.raises(InvalidPositionError) as info:
        # a plain object: lsprotocol's Position refuses negative numbers itself
        _document("utf-16").offset_at(SimpleNamespace(line=line, character=character))
    assert isinstance(info.value, ValueError)
    assert str(line) in str(info.value) or str(character) in str(info.value)


def test_invalid_offsets_raise():
    with pytest.raises(InvalidPositionError, match="outside"):
        _document("utf-16").position_at(len(EMOJI) + 1)


@pytest.mark.parametrize(
    "offset,byte", [(0, 0), (1, 1), (2, 5), (3, 6), (4, 7), (5, 10), (6, 13), (13, 20)]
)
def test_byte_offsets_table(offset, byte):
    doc = _document("utf-16")
    assert doc.byte_offset_of(offset) == byte
    assert doc.offset_of_byte(byte) == offset


def test_byte_inside_a_char_clamps_to_its_start():
    doc = _document("utf-16")
    assert [doc.offset_of_byte(b) for b in (2, 3, 4)] == [1, 1, 1]
    assert doc.offset_of_byte(8) == 4  # inside 中


@pytest.mark.parametrize(
    "offset,point",
    [
        (0, (0, 0)), (3, (0, 6)), (4, (1, 0)), (7, (1, 7)), (10, (2, 0)),
        (12, (2, 2)),  # after the lone "\r": tree-sitter stays on row 2
        (13, (2, 3)),
    ],
)  # fmt: skip
def test_points_count_newlines_only(offset, point):
    assert _document("utf-16").point_of(offset) == point


def test_lone_surrogate_positions_in_a_document():
    doc = _document("utf-8", "a\ud800b")
    assert doc.byte_offset_of(2) == 4
    assert doc.offset_at(types.Position(line=0, character=2)) == 1  # inside the 3 bytes: clamp
