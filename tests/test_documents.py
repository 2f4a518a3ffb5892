"""DocumentStore: text, line index and incremental tree stay equal to a from-scratch reference."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from codet5_lsp.server.documents import DocumentStore, UnknownDocumentError, looks_binary
from codet5_lsp.server.languages import new_parser
from codet5_lsp.server.positions import InvalidPositionError

URI = "file:///tmp/t.py"
ENCODINGS = ["utf-16", "utf-8", "utf-32"]

PY_SOURCE = (
    "import os\r\n"
    "def f(a):\r\n"
    "\treturn a  # 😀 emoji\r\n"
    "class 中文:\n"
    "    def g(self):\n"
    "        s = 'héllo 𝄞'\r"
    "        return s\n"
)


# ---- an independent reference for LSP positions (not using server.positions) -------------
def _ref_lines(text: str) -> list[str]:
    """Line contents, LSP style (\\r\\n, \\r, \\n all end a line)."""
    return re.split(r"\r\n|\r|\n", text)


def _ref_units(s: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(s.encode("utf-8", "surrogatepass"))
    if encoding == "utf-16":
        return len(s.encode("utf-16-le", "surrogatepass")) // 2
    return len(s)


def _ref_position(text: str, offset: int, encoding: str) -> types.Position:
    before = text[:offset]
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    line = max(i for i, s in enumerate(starts) if s <= offset)
    return types.Position(line=line, character=_ref_units(before[starts[line] :], encoding))


@dataclass
class Partial:
    range: types.Range
    text: str


@dataclass
class Whole:
    text: str


def _nodes(tree) -> list[tuple]:
    out, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        out.append(
            (
                node.type,
                node.start_byte,
                node.end_byte,
                tuple(node.start_point),
                tuple(node.end_point),
                node.is_missing,
            )
        )
        stack.extend(reversed(node.children))
    return out


def _fresh(text: str, language: str = "python"):
    return new_parser(language).parse(text.encode("utf-8", "surrogatepass"))


def _assert_same_tree(doc, text: str) -> None:
    assert doc.tree is not None
    fresh = _fresh(text, doc.language_id)
    assert str(doc.tree.root_node) == str(fresh.root_node)
    assert _nodes(doc.tree) == _nodes(fresh)


# ---- plain behaviour ---------------------------------------------------------------------
def test_open_get_close_frees():
    store = DocumentStore()
    doc = store.open(URI, PY_SOURCE, "python", 1)
    assert URI in store and len(store) == 1 and store.get(URI) is doc
    assert doc.tree is not None and doc.tree.root_node.type == "module"
    assert doc.line_count == 8
    store.close(URI)
    assert URI not in store and len(store) == 0
    with pytest.raises(UnknownDocumentError, match="file:///tmp/t.py"):
        store.get(URI)
    with pytest.raises(UnknownDocumentError):
        store.change(URI, 2, [Whole("x")])
    store.close(URI)  # closing twice is harmless


def test_unknown_document_error_is_a_keyerror_with_a_readable_message():
    err = UnknownDocumentError("document file:///x is not open")
    assert isinstance(err, KeyError) and str(err) == "document file:///x is not open"


@pytest.mark.parametrize(
    "encoding,character,expected_col",
    [
        ("utf-16", 13, 13),  # before the emoji
        ("utf-16", 14, 13),  # inside the surrogate pair: clamped to the emoji's start
        ("utf-16", 15, 14),  # after the emoji
        ("utf-8", 15, 13),
        ("utf-8", 16, 13),
        ("utf-8", 17, 14),
        ("utf-32", 14, 14),
        ("utf-16", 999, len("\treturn a  # 😀 emoji")),  # past the end: end of line (not \r\n)
    ],
)
def test_offsets_follow_the_negotiated_encoding(encoding, character, expected_col):
    store = DocumentStore(encoding=encoding)
    doc = store.open(URI, PY_SOURCE, "python", 1)
    offset = doc.offset_at(types.Position(line=2, character=character))
    assert offset - doc.line_start(2) == expected_col
    back = doc.position_at(offset)
    assert doc.offset_at(back) == offset


def test_line_past_the_end_is_an_error_with_a_clear_message():
    doc = DocumentStore().open(URI, "a\nb\n", "python", 1)
    assert doc.line_count == 3
    assert doc.offset_at(types.Position(line=2, character=0)) == 4
    with pytest.raises(InvalidPositionError, match="line 3 is outside"):
        doc.offset_at(types.Position(line=3, character=0))
    with pytest.raises(InvalidPositionError):
        doc.line_text(-1)


def test_byte_offsets_and_points():
    doc = DocumentStore().open(URI, "é\r\nx😀y\rz", "python", 1)
    text = doc.text
    for offset in range(len(text) + 1):
        assert doc.byte_offset_of(offset) == len(text[:offset].encode("utf-8"))
        assert doc.offset_of_byte(doc.byte_offset_of(offset)) == offset
    # tree-sitter rows count "\n" only: the lone "\r" does not start a row
    assert doc.point_of(len(text)) == (1, len("x😀y\rz".encode()))
    assert doc.offset_of_byte(5) == 4  # byte 5 is inside the emoji: clamp to its start


def test_lsp_content_change_objects_partial_and_whole():
    store = DocumentStore()
    doc = store.open(URI, "def f():\n    pass\n", "python", 1)
    store.change(
        URI,
        2,
        [
            types.TextDocumentContentChangePartial(
                range=types.Range(
                    start=types.Position(line=1, character=4),
                    end=types.Position(line=1, character=8),
                ),
                text="return 1",
            )
        ],
    )
    assert doc.text == "def f():\n    return 1\n" and doc.version == 2
    _assert_same_tree(doc, doc.text)
    store.change(URI, 3, [types.TextDocumentContentChangeWholeDocument(text="x = 1\n")])
    assert doc.text == "x = 1\n" and doc.version == 3
    _assert_same_tree(doc, doc.text)


def test_plain_json_changes_are_accepted():
    store = DocumentStore()
    doc = store.open(URI, "ab\n", "python", 1)
    store.change(
        URI,
        2,
        [
            {
                "range": {"start": {"line": 0, "character": 1}, "end": {"line": 0, "character": 2}},
                "text": "X",
            }
        ],
    )
    assert doc.text == "aX\n"
    store.change(URI, 3, [{"text": "new\n"}])
    assert doc.text == "new\n"


def test_several_changes_in_one_message_apply_in_order():
    store = DocumentStore()
    doc = store.open(URI, "abc\n", "python", 1)
    pos = types.Position
    store.change(
        URI,
        2,
        [
            Partial(
                types.Range(start=pos(line=0, character=3), end=pos(line=0, character=3)), "d\nef"
            ),
            Partial(types.Range(start=pos(line=1, character=0), end=pos(line=1, character=1)), "E"),
            Partial(
                types.Range(start=pos(line=0, character=0), end=pos(line=0, character=0)), "x = 0\n"
            ),
        ],
    )
    assert doc.text == "x = 0\nabcd\nEf\n"
    _assert_same_tree(doc, doc.text)


def test_too_large_and_binary_are_tracked_but_not_parsed():
    store = DocumentStore(max_bytes=50)
    big = store.open("file:///big.py", "x = 1\n" * 20, "python", 1)
    assert big.too_large and big.tree is None and big.text == "x = 1\n" * 20
    store.change("file:///big.py", 2, [Whole("x = 1\n")])
    assert not big.too_large and big.tree is not None  # shrinks below the limit: parsed
    binary = store.open("file:///bin.py", "ab\x00cd", "python", 1)
    assert binary.binary and binary.tree is None and binary.text == "ab\x00cd"
    store.change(
        "file:///bin.py",
        2,
        [
            Partial(
                types.Range(
                    start=types.Position(line=0, character=2),
                    end=types.Position(line=0, character=3),
                ),
                "",
            )
        ],
    )
    assert binary.text == "abcd" and not binary.binary
    _assert_same_tree(binary, "abcd")
    assert looks_binary("\x01\x02\x03\x04abc") and not looks_binary("a\tb\r\n\x1b[0m")


def test_lone_surrogates_do_not_crash_and_are_kept():
    store = DocumentStore()
    doc = store.open(URI, "s = '\ud800'\n", "python", 1)
    assert doc.text == "s = '\ud800'\n"
    assert doc.tree is not None
    store.change(
        URI,
        2,
        [
            Partial(
                types.Range(
                    start=types.Position(line=0, character=6),
                    end=types.Position(line=0, character=6),
                ),
                "\udc00x",
            )
        ],
    )
    assert doc.text == "s = '\ud800\udc00x'\n"
    _assert_same_tree(doc, doc.text)
    assert doc.byte_offset_of(len(doc.text)) == len(doc.text.encode("utf-8", "surrogatepass"))


def test_unknown_language_is_plain_text():
    store = DocumentStore()
    doc = store.open("file:///a.txt", "hello\n", "plaintext", 1)
    assert doc.tree is None and not doc.binary
    store.change(
        "file:///a.txt",
        2,
        [
            Partial(
                types.Range(
                    start=types.Position(line=0, character=5),
                    end=types.Position(line=0, character=5),
                ),
                " world",
            )
        ],
    )
    assert doc.text == "hello world\n"


def test_encoding_set_after_initialize_applies_to_open_documents():
    store = DocumentStore()
    doc = store.open(URI, "😀x\n", "python", 1)
    store.encoding = "utf-32"
    assert doc.offset_at(types.Position(line=0, character=1)) == 1
    store.encoding = types.PositionEncodingKind.Utf8
    assert store.encoding == "utf-8"
    assert doc.offset_at(types.Position(line=0, character=4)) == 1


def test_edit_log_tells_which_offsets_are_stable():
    store = DocumentStore()
    doc = store.open(URI, "import os\n\ndef f():\n    pass\n", "python", 1)
    mark = doc.edit_count
    assert doc.first_edit_offset_since(mark) is None
    pos = types.Position(line=3, character=4)
    store.change(URI, 2, [Partial(types.Range(start=pos, end=pos), "x")])
    assert doc.first_edit_offset_since(mark) == doc.text.index("xpass")
    store.change(URI, 3, [Whole("y = 1\n")])
    assert doc.first_edit_offset_since(mark) == 0


def test_line_index_stays_right_while_typing_far_apart():
    """The line index shifts lazily; edits that jump around must still see exact offsets."""
    lines = [f"line_{i} = {i}" for i in range(300)]
    reference = "\n".join(lines) + "\n"
    store = DocumentStore()
    doc = store.open(URI, reference, "python", 1)
    version = 1
    for line in (250, 10, 10, 299, 0, 150, 151, 149):
        pos = types.Position(line=line, character=2)
        version += 1
        store.change(URI, version, [Partial(types.Range(start=pos, end=pos), "é\n😀")])
        offset = doc.offset_at(pos)
        reference = reference[:offset] + "é\n😀" + reference[offset:]
        assert doc.text == reference
        assert [doc.line_start(n) for n in range(doc.line_count)] == [0] + [
            i + 1 for i, ch in enumerate(reference) if ch == "\n"
        ]
        assert doc.line_starts_between(0, len(reference)) == [
            doc.line_start(n) for n in range(doc.line_count)
        ]
    _assert_same_tree(doc, reference)


# ---- property tests ------------------------------------------------------------------------
_ALPHABET = st.sampled_from(
    list("ab1 (:)'\"#=") + ["\t", "\n", "\r\n", "\r", "😀", "中", "é", "def ", "    ", "if x:", "𝄞"]
)
_TEXT = st.lists(_ALPHABET, max_size=12).map("".join)


def _valid_offset(text: str, offset: int) -> int:
    """Offsets between "\\r" and "\\n" have no LSP position: move them before the "\\r"."""
    if 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n":
        return offset - 1
    return offset


@st.composite
def _edits(draw):
    return draw(
        st.lists(
            st.tuples(st.floats(0, 1), st.floats(0, 1), _TEXT, st.booleans(), st.integers(1, 3)),
            min_size=1,
            max_size=12,
        )
    )


@settings(
    max_examples=int(os.environ.get("DOCUMENTS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    initial=_TEXT,
    edits=_edits(),
    encoding=st.sampled_from(ENCODINGS),
    language=st.sampled_from(["python", "javascript", "plaintext"]),
)
def test_random_edits_keep_text_and_tree_equal_to_reference(initial, edits, encoding, language):
    store = DocumentStore(encoding=encoding)
    doc = store.open(URI, initial, language, 0)
    reference = initial
    version = 0
    for a, b, new_text, full_sync, batch in edits:
        version += 1
        if full_sync and a < 0.1:
            reference = new_text
            store.change(URI, version, [Whole(new_text)])
        else:
            changes = []
            for i in range(batch):  # several changes in one message, each on the text so far
                start = _valid_offset(reference, int(min(a, b) * len(reference)))
                end = _valid_offset(reference, int(max(a, b) * len(reference)))
                piece = new_text[i:] if i else new_text
                changes.append(
                    Partial(
                        types.Range(
                            start=_ref_position(reference, start, encoding),
                            end=_ref_position(reference, end, encoding),
                        ),
                        piece,
                    )
                )
                reference = reference[:start] + piece + reference[end:]
            store.change(URI, version, changes)
        assert doc.text == reference
        assert doc.version == version
        assert doc.line_count == len(_ref_lines(reference))
        for line, content in enumerate(_ref_lines(reference)):
            assert doc.line_text(line) == content
        for offset in {0, len(reference) // 2, len(reference)}:
            offset = _valid_offset(reference, offset)
            assert doc.byte_offset_of(offset) == len(reference[:offset].encode())
            assert doc.offset_at(_ref_position(reference, offset, encoding)) == offset
            assert doc.position_at(offset) == _ref_position(reference, offset, encoding)
        if language == "plaintext":
            assert doc.tree is None
        else:
            _assert_same_tree(doc, reference)
    store.close(URI)
    assert URI not in store


# ---- cooperative re-parse: the event loop is not held by one long parse ------------------
def _big_module(functions: int = 600) -> str:
    return "".join(
        f"def f{i}(a, b):\n    x = [a, b, {i}]\n    return g(x, a * b)\n\n"
        for i in range(functions)
    )


async def _big_module_with_unclosed_paren(store: DocumentStore):
    """A parsed big module, then an unclosed "(" typed into f1 (version 2), its tree not yet
    re-parsed: tree-sitter's error recovery then reaches far into the file."""
    doc = store.open(URI, _big_module(), "python", 1)
    await doc.parse_cooperatively()
    at = types.Position(line=5, character=4)  # "    x = [a, b, 1]" of f1
    return store.change(
        URI,
        2,
        [
            types.TextDocumentContentChangePartial(
                range=types.Range(start=at, end=at), text="y = h(\n"
            )
        ],
    )


async def _ticking(stop) -> int:
    ticks = 0
    while not stop.is_set():
        ticks += 1
        await asyncio.sleep(0)
    return ticks


async def test_cooperative_parse_yields_to_the_loop_and_gives_the_fresh_tree():
    store = DocumentStore()
    doc = await _big_module_with_unclosed_paren(store)
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticking(stop))
    await asyncio.sleep(0)
    tree = await doc.parse_cooperatively(slice_micros=200)
    stop.set()
    ticks = await ticker
    # Without slicing the parse is one call and the ticker cannot run while it lasts.
    assert ticks >= 3
    assert tree is doc.tree and not doc._tree_stale
    _assert_same_tree(doc, doc.text)


async def test_edits_between_slices_restart_the_parse_on_the_new_text():
    store = DocumentStore()
    doc = await _big_module_with_unclosed_paren(store)
    typed = iter(")]} z")
    edits = []

    async def type_while_parsing():
        for version, char in enumerate(typed, start=3):
            await asyncio.sleep(0)
            pos = types.Position(line=6, character=0)
            store.change(
                URI,
                version,
                [
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=pos, end=pos), text=char
                    )
                ],
            )
            edits.append(doc._parse_halted)

    typist = asyncio.create_task(type_while_parsing())
    await asyncio.gather(
        doc.parse_cooperatively(slice_micros=100), doc.parse_cooperatively(slice_micros=100), typist
    )
    assert len(edits) == 5 and any(edits)  # some keystrokes landed in the middle of a parse
    await doc.parse_cooperatively()
    _assert_same_tree(doc, doc.text)
    assert doc.text.count(")]} z") == 0 and "z }])" in doc.text  # typed in order at one spot


async def test_synchronous_access_after_an_abandoned_cooperative_parse():
    store = DocumentStore()
    doc = await _big_module_with_unclosed_paren(store)
    task = asyncio.create_task(doc.parse_cooperatively(slice_micros=100))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert doc._parse_halted
    task.cancel()  # e.g. the request was cancelled mid-parse
    with pytest.raises(asyncio.CancelledError):
        await task
    other = doc.text.replace("def f2(", "def renamed(")
    store.change(URI, 3, [Whole(other)])
    _assert_same_tree(doc, other)  # the halted parse of the old text is not resumed


async def test_a_parse_over_budget_finishes_in_the_background_and_tree_does_not_block():
    from codet5_lsp.server.context import build_completion_context

    store = DocumentStore()
    doc = await _big_module_with_unclosed_paren(store)
    assert await doc.parse_cooperatively(slice_micros=100, budget_s=0) is None
    assert doc.parse_pending and doc.tree is None  # no synchronous parse behind our back
    ctx = build_completion_context(
        doc, types.Position(line=6, character=0), lambda text: len(text) // 4, 64, 16
    )
    assert ctx.prefix.endswith("y = h(\n") and "def f1(a, b):" in ctx.prefix
    for _ in range(100_000):
        if not doc.parse_pending:
            break
        await asyncio.sleep(0)
    assert not doc.parse_pending
    _assert_same_tree(doc, doc.text)


async def test_closing_a_document_stops_its_background_parse():
    store = DocumentStore()
    doc = await _big_module_with_unclosed_paren(store)
    await doc.parse_cooperatively(slice_micros=100, budget_s=0)
    finisher = doc._finisher
    assert finisher is not None and not finisher.done()
    store.close(URI)
    await asyncio.sleep(0)
    assert finisher.cancelled()


def test_the_context_cache_survives_edits_and_a_fork_writes_nothing_back():
    from codet5_lsp.server.context import build_completion_context
    from codet5_lsp.server.syntax import detect_indent_unit, imports

    store = DocumentStore()
    doc = store.open(URI, "import os\n\ndef f():\n  return 1\n", "python", 1)
    assert detect_indent_unit(doc, 2) == "  " and imports(doc) == ["import os"]
    cache = doc.context_cache
    end = types.Position(line=4, character=0)
    store.change(
        URI,
        2,
        [
            types.TextDocumentContentChangePartial(
                range=types.Range(start=end, end=end), text="x = 1\n"
            )
        ],
    )
    assert doc.context_cache is cache and cache.imports is not None and cache.indent_units
    build_completion_context(doc, end, lambda s: len(s) // 2, 4, 0)
    assert cache.chars_per_token is not None

    cache.background_parse = object()  # type: ignore[assignment]  # as if one were running
    fork = doc.fork_with_insert(len(doc.text), "def g():\n\treturn 2\n")
    assert fork.context_cache.background_parse is None  # the fork has its own text to parse
    assert fork.context_cache.identifier_sets is cache.identifier_sets  # content-keyed: shared
    fork.context_cache.indent_units[7] = (fork.edit_count, "\t")
    fork.context_cache.chars_per_token = 1.0
    assert 7 not in cache.indent_units and cache.chars_per_token != 1.0
