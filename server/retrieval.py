"""What goes in front of the cursor window: code that carries the names the next line needs.

Why: when the file is longer than the model's window, about a third of the identifiers the
rest of a line uses are outside the window but in the same file (or in another open file):
a method defined further up, an attribute set in `__init__`, an imported name, a module
constant, a name the next lines go on to use (docs/context-selection.md, "Identifier
recall"). The window cannot hold them, but a few short lines can: the imports that bind them,
the signatures of the definitions near the cursor (before and after it), the `self.x = ...`
lines of the enclosing class, module and class constants, the lines right after the cursor's
(decoder mode only: infill shows them as the suffix), the signatures of names imported
from other open documents, and, when the cursor is inside a word (`self.sto|`), the line of
the nearest use of each name that completes it (`store_handle`): the name the completion
writes first, and the one signal that says which name comes next (`word_completions`).

Each such line is a *unit*. A unit is worth the identifiers it adds that the context does not
already hold, each weighted by how likely the next line is to need it (`name_weights`: the
more often it occurs in the code around the cursor, the more; many times more when the
lines right after the cursor's use it; and far more when it completes the word at the
cursor); it costs its tokens (plus those of its parent: a
method needs its class's header line). Units are picked greedily by value per
token within the head budget, then laid out as code in the file's own language: other files'
signatures under a comment naming the file, the imports, then the file's definitions in file
order with their indentation (a skeleton of the file), then the lines after the cursor.
Python signatures with no chosen body line after them (and whose body the window does not
go on with) get ` ...`, so the skeleton stays valid Python.

Everything is bounded for the keystroke budget: the scan covers the top-level items within
REGION_BYTES of the cursor (of a long class, the members near the cursor); the units of an
item (or, for the item being edited, of each member) are cached by its source bytes, so they
survive edits elsewhere; the weights are one regex pass over the bytes around the cursor, the
word's completions another (with the typed part as a literal start); and another document's
index of definitions is rebuilt only after that document changed.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from codet5_lsp.server.languages import LanguageSpec, grammar_key, spec_for
from codet5_lsp.server.syntax import (
    IDENTIFIER,
    NAME_BYTES,
    body_node,
    definition_in,
    definition_nodes,
    identifiers,
    import_nodes,
    items_around,
    name_node,
    top_level_item_at,
)

if TYPE_CHECKING:
    import tree_sitter

    from codet5_lsp.server.documents import Document

CountTokens = Callable[[str], int]
Weights = Mapping[bytes, float]

# Part kinds, in the order they appear in the prompt (see CompletionContext.prefix_parts).
OTHER_FILES = "other_files"
IMPORTS = "imports"
DEFINITIONS = "definitions"
WINDOW = "cursor_window"
SUFFIX = "suffix"

FOLLOWING = "after_cursor"
# The next lines after the cursor's (what the code goes on to use) are candidates too. They go
# last, just before the window: placed first they scored lower on the development set (docs/
# context-selection.md).
FOLLOWING_LINES = 25
FOLLOWING_FIRST = False
# A name's weight (name_weights): its count around the cursor, times 1 + FOLLOWING_NEED / k
# when the k-th line after the cursor's uses it: on the development set a name the next line
# uses was needed about 20 times as often as others (docs/context-selection.md, "Weights").
FOLLOWING_NEED = 100.0
# A name that completes the word being typed (`self.sto|` -> `store_handle`) is the first thing
# the completion writes: it weighs 1 + WORD_NEED / n (n: how many names complete the word), so
# a line that holds it goes first. On the development set this lifted the recall of the word at
# the cursor from 0.49 to 0.69 at 256 tokens (docs/context-selection.md, "The word at the
# cursor"); 1,000 gave 0.65, more than 10,000 no more.
WORD_NEED = 10_000.0
WORD_SCAN_BYTES = 200_000  # the completions of the word are looked for this close to the cursor
SHORT_WORD_SCAN_BYTES = 24_000  # ... and this close when 1 or 2 bytes of it are typed
MAX_COMPLETIONS = 32  # the nearest names that complete it; a head has room for a few lines
REGION_BYTES = 12_000  # the top-level items this close to the cursor are scanned
MAX_HEADER_LINES = 6  # a signature longer than this is cut (it is a hint, not the code)
MAX_UNIT_CHARS = 240  # a unit line longer than this is not worth its tokens
UNSEEN_WEIGHT = 0.25  # a name not used around the cursor may still be needed
OTHER_DOC_INDEX_BYTES = 400_000  # an open document is indexed up to here
OTHER_DOC_PARSE_BYTES = 150_000  # a stale one up to this size is parsed on the spot

_ATTRIBUTE = re.compile(
    rb"^[ \t]*(?:self|this)\.([A-Za-z_][A-Za-z0-9_]*)[ \t]*(?::[^=\n]*)?=(?!=)", re.M
)
_DECLARED_NAME = re.compile(
    rb"[ \t]*(?:export[ \t]+)?(?:(?:pub|const|let|var|static|final|public)[ \t]+)*"
    rb"([A-Za-z_][A-Za-z0-9_]*)"
)
_COMPOUND_STATEMENTS = frozenset(
    {
        "if_statement",
        "for_statement",
        "while_statement",
        "try_statement",
        "with_statement",
        "match_statement",
        "comment",
        "line_comment",
        "block_comment",
        "expression_statement_call",
    }
)


@dataclass(frozen=True)
class Unit:
    """A line (or a multi-line signature) that may go before the window.

    `order` sorts units into file order (row); `parent` is the `order` of the unit that must
    precede it (a method's class header, an attribute's method); `source` is "" for the
    document itself, else the other document's label.
    """

    order: tuple[str, int]
    kind: str
    text: str
    ids: frozenset[bytes]
    parent: tuple[str, int] | None = None
    source: str = ""
    python_stub: bool = False  # a Python signature: gets " ..." when nothing follows it


# ---- units of one member (cached by its bytes) ----------------------------------------------
# A member is a top-level item, or one item of a top-level class's body (so that typing inside
# a long class re-reads only the method being edited). Its raw units are
# (relative row, text, parent, python_stub, identifiers); parent is None, CONTAINER (the
# header of the class around the member) or a relative row in the member (the signature of
# the method that sets an attribute).
CONTAINER = -1
_RawUnit = tuple[int, str, "int | None", bool, frozenset]


def _header_rows(node: "tree_sitter.Node", item_row: int, lines: list[bytes]) -> tuple[int, int]:
    """(first, last) rows of a definition's signature, relative to `item_row` (`lines`:
    the lines from `item_row` on)."""
    first = node.start_point.row - item_row
    body = node.child_by_field_name("body")
    if body is None:
        return first, first
    body_row = body.start_point.row - item_row
    if body_row <= first:
        return first, first
    line = lines[body_row] if body_row < len(lines) else b""
    last = body_row - 1 if not line[: body.start_point.column].strip() else body_row
    return first, min(last, first + MAX_HEADER_LINES - 1)


def _text_rows(lines: list[bytes], first: int, last: int) -> str:
    return b"\n".join(lines[first : last + 1]).decode("utf-8", "replace").rstrip()


def _member_units(
    data: bytes, node: "tree_sitter.Node", spec: LanguageSpec, in_class: bool
) -> list[tuple[int, str, "int | None", bool]]:
    """Units of one member: a function's signature (and, in a class, the `self.x = ...` /
    `this.x = ...` lines of its body), a class's header, or a constant's first line."""
    row0 = node.start_point.row
    parent = CONTAINER if in_class else None
    python = spec.grammar == "python"
    definition = definition_in(node, spec)
    # only the first lines are needed (the signature): do not split a long body
    lines = data.split(
        b"\n", (definition.start_point.row - row0 if definition else 0) + MAX_HEADER_LINES + 2
    )
    if definition is not None:
        first, last = _header_rows(definition, row0, lines)
        text = _text_rows(lines, first, last)
        if not text.strip() or len(text) > 2 * MAX_UNIT_CHARS:
            return []
        out = [(first, text, parent, python and text.endswith(":"))]
        if (
            in_class
            and definition.type in spec.functions
            and (b"self." in data or b"this." in data)
        ):
            for match in _ATTRIBUTE.finditer(data):  # a match starts at its line's start
                end = data.find(b"\n", match.start())
                line = data[match.start() : end if end >= 0 else len(data)]
                if len(line) <= MAX_UNIT_CHARS:
                    out.append(
                        (
                            data.count(b"\n", 0, match.start()),
                            line.decode("utf-8", "replace").rstrip(),
                            first,
                            False,
                        )
                    )
        return out
    if node.type in _COMPOUND_STATEMENTS or "comment" in node.type or node.type in spec.imports:
        return []
    text = lines[0].decode("utf-8", "replace").rstrip()
    if (
        text.strip()
        and len(text) <= MAX_UNIT_CHARS
        and ("=" in text or "declaration" in node.type or node.type.endswith("_item"))
    ):
        return [(0, text, parent, False)]  # a constant (module or class level)
    return []


def _cached_member(
    doc: "Document", node: "tree_sitter.Node", spec: LanguageSpec, in_class: bool
) -> list[_RawUnit]:
    """The units of a member, remembered by its bytes: members away from the edit keep
    them across keystrokes."""
    # from the start of its first line: signatures keep their indentation
    data = bytes(doc.source_bytes[node.start_byte - node.start_point.column : node.end_byte])

    def compute() -> list[_RawUnit]:
        return [
            (*raw, identifiers(raw[1].encode("utf-8", "surrogatepass")))
            for raw in _member_units(data, node, spec, in_class)
        ]

    return doc.context_cache.retrieval_members.get_or_compute((node.type, in_class, data), compute)


def _class_of(item: "tree_sitter.Node", spec: LanguageSpec) -> "tree_sitter.Node | None":
    definition = definition_in(item, spec)
    return definition if definition is not None and definition.type in spec.classes else None


def _class_header(
    doc: "Document", cls: "tree_sitter.Node", spec: LanguageSpec
) -> tuple[int, str, bool, frozenset]:
    """(row, text, python_stub, identifiers) of a class's header lines."""
    row = cls.start_point.row
    body = cls.child_by_field_name("body")
    last = row
    if body is not None and body.start_point.row > row:
        body_row = body.start_point.row
        before = bytes(
            doc.source_bytes[doc.byte_offset_of(doc.line_start(body_row)) : body.start_byte]
        )
        last = min(body_row - 1 if not before.strip() else body_row, row + MAX_HEADER_LINES - 1)
    text = "\n".join(doc.lines(row, last + 1)).rstrip()
    return row, text, spec.grammar == "python" and text.endswith(":"), _line_identifiers(doc, text)


def _line_identifiers(doc: "Document", text: str) -> frozenset[bytes]:
    """identifiers(text), remembered per document (lines recur across keystrokes)."""
    return doc.context_cache.line_identifiers.get_or_compute(
        text, lambda: identifiers(text.encode("utf-8", "surrogatepass"))
    )


def members(
    doc: "Document",
    item: "tree_sitter.Node",
    spec: LanguageSpec,
    near: tuple[int, int] | None = None,
) -> Iterable[tuple[int, str, "int | None", bool, frozenset]]:
    """Units of a top-level item with absolute rows: (row, text, parent row, python_stub,
    identifiers). A class gives its header and the units of its body's items (those within
    the byte range `near`, when given)."""
    cls = _class_of(item, spec)
    if cls is None:
        base = item.start_point.row
        for rel, text, parent, stub, ids in _cached_member(doc, item, spec, False):
            yield base + rel, text, None if parent is None else base + parent, stub, ids
        return
    header_row, text, stub, ids = _class_header(doc, cls, spec)
    yield header_row, text, None, stub, ids
    body = body_node(cls)
    for child in _children_near(body, near) if body is not None else ():
        base = child.start_point.row
        for rel, text, parent, stub, ids in _cached_member(doc, child, spec, True):
            absolute = (
                header_row if parent == CONTAINER else (None if parent is None else base + parent)
            )
            yield base + rel, text, absolute, stub, ids


def _children_near(
    body: "tree_sitter.Node", near: tuple[int, int] | None
) -> Iterable["tree_sitter.Node"]:
    """The named children of `body` that overlap the byte range `near` (all without it),
    found by bisection: a long class is not walked child by child on every keystroke."""
    count = body.named_child_count
    if near is None:
        yield from body.named_children
        return
    lo, hi = 0, count  # the first child that ends at or after near[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if body.named_child(mid).end_byte < near[0]:  # type: ignore[union-attr]
            lo = mid + 1
        else:
            hi = mid
    for index in range(lo, count):
        child = body.named_child(index)
        if child is None or child.start_byte > near[1]:
            return
        yield child


def _expanded_item(doc: "Document", item: "tree_sitter.Node", spec: LanguageSpec) -> list[tuple]:
    """All of `members(item)` with rows relative to the item, remembered by the item's
    bytes (one lookup per item that is not being edited)."""
    data = bytes(doc.source_bytes[item.start_byte - item.start_point.column : item.end_byte])

    def compute() -> list[tuple]:
        base = item.start_point.row
        return [
            (row - base, text, None if parent is None else parent - base, stub, ids)
            for row, text, parent, stub, ids in members(doc, item, spec)
        ]

    return doc.context_cache.retrieval_items.get_or_compute((item.type, data), compute)


def name_weights(
    counts: Counter,
    following: Sequence[tuple[int, frozenset[bytes]]],
    completing: frozenset[bytes] = frozenset(),
) -> Weights:
    """How much each name is worth to the context (what `choose_units` adds up): about how
    likely the rest of the line is to need it. `counts`: its occurrences around the cursor;
    `following`: (k, names) of the k-th line after the cursor's, nearest first;
    `completing`: the names that complete the word at the cursor (WordCompletions.names),
    each times 1 + WORD_NEED / len(completing). A name missing from the result weighs
    UNSEEN_WEIGHT."""
    weights = {name: n + UNSEEN_WEIGHT for name, n in counts.items()}
    seen: set[bytes] = set()
    for distance, names in following:
        factor = 1.0 + FOLLOWING_NEED / distance
        for name in names - seen:  # the nearest use counts
            weights[name] = weights.get(name, UNSEEN_WEIGHT) * factor
        seen |= names
    if completing:
        factor = 1.0 + WORD_NEED / len(completing)
        for name in completing:
            weights[name] = weights.get(name, UNSEEN_WEIGHT) * factor
    return weights


def region_counts(doc: "Document", cursor_byte: int, scan_bytes: int) -> Counter:
    """Identifier counts of the code within about scan_bytes / 2 of the cursor (one regex
    pass in C; keywords and one-letter names never reach a unit, so they are left in)."""
    data = doc.source_bytes
    return Counter(
        IDENTIFIER.findall(
            bytes(data[max(0, cursor_byte - scan_bytes // 2) : cursor_byte + scan_bytes // 2])
        )
    )


# ---- the word at the cursor ------------------------------------------------------------------
_WORD_TAIL = re.compile(rb"[" + NAME_BYTES + rb"]+\Z")
# byte -> 1 when it may be part of a name (the bytes of NAME_BYTES)
_IS_NAME_BYTE = bytes(
    1 if re.fullmatch(rb"[" + NAME_BYTES + rb"]", bytes([b])) else 0 for b in range(256)
)


@dataclass(frozen=True)
class WordCompletions:
    """The names that complete the word being typed at the cursor.

    `fragment`: the identifier part just before the cursor (b"" when the cursor does not
    follow one); `here`: each name of this document that starts with it and is longer, with
    the row of its nearest use that is not in the window (names the window holds are left
    out; the MAX_COMPLETIONS nearest); `elsewhere`: when this document has none, the
    top-level names of other open documents that start with it."""

    fragment: bytes = b""
    here: Mapping[bytes, int] = field(default_factory=dict)
    elsewhere: tuple[bytes, ...] = ()

    @property
    def names(self) -> frozenset[bytes]:
        return frozenset(self.here) | frozenset(self.elsewhere)


def word_fragment(line_prefix: bytes) -> bytes:
    """The identifier part at the end of `line_prefix` (leading digits dropped: `2x` ends in
    `x`), or b"" when it does not end in one."""
    found = _WORD_TAIL.search(line_prefix)
    return found.group(0).lstrip(b"0123456789") if found else b""


def word_completions(
    doc: "Document",
    offset: int,
    window_start: int,
    open_documents: Sequence["Document"] = (),
    scan_bytes: int = WORD_SCAN_BYTES,
) -> WordCompletions:
    """The names that complete the word before str `offset` (see WordCompletions): one regex
    pass over the document's bytes within scan_bytes / 2 of the cursor (SHORT_WORD_SCAN_BYTES
    / 2 for a typed part of 1 or 2 bytes), and, when that finds none, a look at the other open
    documents' definition indexes (same language)."""
    data = doc.source_bytes
    cursor = doc.byte_offset_of(offset)
    line = doc.line_of(offset)
    fragment = word_fragment(bytes(data[doc.byte_offset_of(doc.line_start(line)) : cursor]))
    if not fragment:
        return WordCompletions()
    window = doc.byte_offset_of(window_start)
    line_end = doc.byte_offset_of(doc.line_end(line))
    # a literal start lets the regex engine skip ahead; the word boundary before it is checked
    # by hand (a look-behind would be tried at every byte)
    pattern = re.compile(re.escape(fragment) + rb"[" + NAME_BYTES + rb"]+")
    nearest: dict[bytes, int] = {}  # name -> distance in bytes of its use nearest the cursor
    where: dict[bytes, int] = {}
    in_window: set[bytes] = set()
    if len(fragment) < 3:  # a short start matches inside many words: look nearer
        scan_bytes = min(scan_bytes, SHORT_WORD_SCAN_BYTES)
    for match in pattern.finditer(data, max(0, cursor - scan_bytes // 2), cursor + scan_bytes // 2):
        start = match.start()
        if start and _IS_NAME_BYTE[data[start - 1]]:
            continue  # inside another word
        name = match.group(0)
        if window <= start < line_end:
            in_window.add(name)  # the window shows it (or it is the word itself)
        elif abs(start - cursor) < nearest.get(name, len(data) + 1):
            nearest[name], where[name] = abs(start - cursor), start
    near = sorted((d, name) for name, d in nearest.items() if name not in in_window)
    here = {
        name: doc.line_of(doc.offset_of_byte(where[name])) for _, name in near[:MAX_COMPLETIONS]
    }
    if here or in_window:  # this file completes the word: other files would only dilute it
        return WordCompletions(fragment, here)
    key = grammar_key(doc.language_id)
    elsewhere: dict[bytes, None] = {}
    for other in open_documents:
        if other is doc or other.uri == doc.uri or grammar_key(other.language_id) != key:
            continue
        if other.too_large or other.binary:
            continue
        for name in definition_index(other):
            if name.startswith(fragment) and name != fragment:
                elsewhere.setdefault(name, None)
    return WordCompletions(fragment, here, tuple(elsewhere))


# ---- candidates from this document ---------------------------------------------------------
def document_units(
    doc: "Document",
    offset: int,
    window_start: int,
    scan_bytes: int = REGION_BYTES,
    following_lines: int = FOLLOWING_LINES,
    completions: WordCompletions = WordCompletions(),
) -> tuple[list[Unit], Weights]:
    """Units of `doc` outside the window [window_start, offset), and the weights of the
    names (`name_weights`: from the code around the cursor, the lines after it and the
    `completions` of the word at the cursor). Units: the members of the top-level items
    within about `scan_bytes` of the cursor (a long class: its members within that range),
    the imports, the `following_lines` lines after the cursor's, and for each name that
    completes the word at the cursor and no other unit holds, the line of its nearest use."""
    spec = spec_for(doc.language_id)
    tree = doc.tree if spec is not None else None
    if tree is None or spec is None:
        return [], {}
    root = tree.root_node
    cursor = doc.byte_offset_of(offset)
    anchor = top_level_item_at(root, cursor)
    if anchor is None:
        return [], {}
    window_row, cursor_row = doc.line_of(window_start), doc.line_of(offset)
    near = (cursor - scan_bytes // 2, cursor + scan_bytes // 2)
    counts = region_counts(doc, cursor, scan_bytes)
    units: list[Unit] = []
    line_count = doc.line_count
    # the definitions around the cursor: their bodies go on in the window, so no " ..."
    # (and those the window starts inside: their body goes on in it too)
    enclosing = {
        node.start_point.row for at in (offset, window_start) for node in definition_nodes(doc, at)
    }
    anchor_bytes = min(anchor.end_byte - anchor.start_byte, scan_bytes // 2)
    for item in items_around(anchor, scan_bytes, anchor_bytes):
        if item == anchor or item.end_byte - item.start_byte > scan_bytes:
            # being edited, or a long class: member by member, those near the cursor
            entries: Iterable = members(doc, item, spec, near)
        else:  # unchanged between keystrokes: remembered whole
            base = item.start_point.row
            entries = (
                (base + rel, text, None if parent is None else base + parent, stub, ids)
                for rel, text, parent, stub, ids in _expanded_item(doc, item, spec)
            )
        for row, text, parent, stub, ids in entries:
            if row >= line_count or window_row <= row <= cursor_row:
                continue  # nothing, or already in the window (or the cursor's own line)
            units.append(
                Unit(
                    ("", row),
                    DEFINITIONS,
                    text,
                    ids,
                    ("", parent) if parent is not None else None,
                    "",
                    stub and row not in enclosing,
                )
            )
    following: list[tuple[int, frozenset[bytes]]] = []
    if following_lines > 0:
        last = min(line_count - 1, cursor_row + following_lines)
        for r in range(cursor_row + 1, last + 1):
            text = doc.line_text(r)
            if text.strip() and len(text) <= MAX_UNIT_CHARS:
                ids = _line_identifiers(doc, text)
                following.append((r - cursor_row, ids))
                units.append(Unit(("", r), FOLLOWING, text, ids))
    for start, text in import_nodes(doc):
        if start < window_start:
            units.append(
                Unit(("", doc.line_of(start)), IMPORTS, text, _line_identifiers(doc, text))
            )
    units += _completion_units(doc, completions, units, cursor_row, following_lines)
    return units, name_weights(counts, following, completions.names)


def _completion_units(
    doc: "Document",
    completions: WordCompletions,
    units: Sequence[Unit],
    cursor_row: int,
    following_lines: int,
) -> list[Unit]:
    """The line of the nearest use of each name in `completions.here` that none of `units`
    holds (a line above the cursor goes with the definitions, in file order; one below it
    with the lines after the cursor). Without `following_lines` (infill: the suffix shows
    the text after the cursor) the next FOLLOWING_LINES rows are left to the suffix."""
    if not completions.here:
        return []
    held = set().union(*(u.ids for u in units)) if units else set()
    rows = {u.order[1] for u in units if not u.source}
    out = []
    for name, row in completions.here.items():
        if name in held or row in rows:
            continue
        if not following_lines and cursor_row < row <= cursor_row + FOLLOWING_LINES:
            continue
        text = doc.line_text(row)
        if len(text) > MAX_UNIT_CHARS:
            continue
        ids = _line_identifiers(doc, text)
        out.append(Unit(("", row), FOLLOWING if row > cursor_row else DEFINITIONS, text, ids))
        rows.add(row)
        held |= ids
    return out


# ---- candidates from other open documents --------------------------------------------------
def document_label(uri: str) -> str:
    """The last two path components of a URI (what the comment above its lines says)."""
    path = uri.split("?", 1)[0].rstrip("/")
    return "/".join(path.split("/")[-2:])


def definition_index(doc: "Document") -> dict[bytes, list[tuple]]:
    """Top-level names of `doc` (functions, classes, constants) -> their units (a class:
    header, method signatures and the attributes they set). Rebuilt only after `doc`
    changed; None-safe for documents without a tree."""
    cached = doc.context_cache.definition_index
    if cached is not None and cached[0] == doc.edit_count:
        return cached[1]
    spec = spec_for(doc.language_id)
    if spec is None or not doc.parseable:
        return {}
    if not doc.tree_is_current:
        if len(doc.source_bytes) > OTHER_DOC_PARSE_BYTES or doc.parse_pending:
            _parse_in_background(doc)  # a long parse never runs inside a keystroke
            return cached[1] if cached is not None else {}
    tree = doc.tree  # short (a few ms at most), or already current
    index: dict[bytes, list[tuple]] = {}
    if tree is not None:
        for item in tree.root_node.named_children:
            if item.start_byte > OTHER_DOC_INDEX_BYTES:
                break
            if item.type in spec.imports:
                continue
            definition = definition_in(item, spec)
            named = name_node(definition, spec) if definition is not None else None
            if definition is not None and named is not None:
                name = bytes(doc.source_bytes[named.start_byte : named.end_byte])
            elif definition is None:
                first = bytes(doc.source_bytes[item.start_byte : item.end_byte]).split(b"\n")[0]
                found = _DECLARED_NAME.match(first)
                if found is None or b"=" not in first:
                    continue
                name = found.group(1)
            else:
                continue
            units = list(members(doc, item, spec))
            if units:
                index.setdefault(name, []).extend(units)
    doc.context_cache.definition_index = (doc.edit_count, index)
    return index


def _parse_in_background(doc: "Document") -> None:
    """Start a cooperative parse of `doc` when an event loop runs (the server); the next
    request finds its tree current."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = doc.context_cache.background_parse
    if task is None or task.done():
        doc.context_cache.background_parse = loop.create_task(doc.parse_cooperatively())


def module_stem(uri: str) -> bytes:
    """The module name a file is imported by: its base name without extension."""
    name = uri.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0].encode("utf-8", "surrogatepass")


def other_document_units(
    doc: "Document", names: Iterable[bytes], open_documents: Sequence["Document"]
) -> list[Unit]:
    """Units from the other open documents of the same language: the definitions of
    `names` (the first document defining a name wins), and every top-level definition of a
    document imported as a module (its file's stem is one of `names`: `import positions as
    P` makes all of positions.py's functions candidates, for `P.encode_utf8`)."""
    key = grammar_key(doc.language_id)
    wanted = set(names)
    out: list[Unit] = []
    for other in open_documents:
        if (
            other is doc
            or other.uri == doc.uri
            or grammar_key(other.language_id) != key
            or other.too_large
            or other.binary
        ):
            continue
        index = definition_index(other)
        label = document_label(other.uri)
        whole_module = module_stem(other.uri) in wanted
        for name in list(index) if whole_module else list(wanted):
            raw = index.get(name)
            if not raw:
                continue
            wanted.discard(name)
            for row, text, parent, stub, ids in raw:
                out.append(
                    Unit(
                        (label, row),
                        OTHER_FILES,
                        text,
                        ids,
                        (label, parent) if parent is not None else None,
                        label,
                        stub,
                    )
                )
    return out


def imported_names(doc: "Document", window_start: int, offset: int) -> list[bytes]:
    """Names the cursor's code may take from other files: those its imports bind and those
    used in the last lines before the cursor (most recent first)."""
    names: dict[bytes, None] = {}
    data = doc.source_bytes
    line = doc.line_of(offset)
    recent = bytes(
        data[doc.byte_offset_of(doc.line_start(max(0, line - 20))) : doc.byte_offset_of(offset)]
    )
    for word in reversed(IDENTIFIER.findall(recent)):
        names.setdefault(word, None)
    for _, text in import_nodes(doc):
        for word in IDENTIFIER.findall(text.encode("utf-8", "surrogatepass")):
            names.setdefault(word, None)
    return list(names)


# ---- choosing and laying out ---------------------------------------------------------------
def choose_units(
    units: Sequence[Unit], weights: Weights, covered: frozenset[bytes] | set, budget_chars: float
) -> list[Unit]:
    """Greedy by value per character (lazy: a unit's value only falls as names get covered):
    value = sum of the weights of the names it adds (UNSEEN_WEIGHT for a name `weights`
    lacks); a unit's parent is taken with it."""
    by_order = {u.order: u for u in units}
    covered = set(covered)
    chosen: dict[tuple[str, int], Unit] = {}
    spent = 0.0

    def cost(unit: Unit) -> float:
        total = len(unit.text) + 1
        parent = unit.parent
        while parent is not None and parent not in chosen and parent in by_order:
            total += len(by_order[parent].text) + 1
            parent = by_order[parent].parent
        return total

    def value(unit: Unit) -> float:
        return sum(weights.get(name, UNSEEN_WEIGHT) for name in unit.ids - covered)

    heap = [(-value(u) / cost(u), i) for i, u in enumerate(units)]
    heapq.heapify(heap)
    while heap:
        negative, i = heapq.heappop(heap)
        unit = units[i]
        if unit.order in chosen:
            continue
        current = value(unit) / cost(unit)
        if current <= 0:
            break
        if heap and current < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-current, i))  # stale: look again later
            continue
        needed = cost(unit)
        if spent + needed > budget_chars:
            continue
        spent += needed
        chain = [unit]
        parent = unit.parent
        while parent is not None and parent not in chosen and parent in by_order:
            chain.append(by_order[parent])
            parent = by_order[parent].parent
        for member in chain:
            chosen[member.order] = member
            covered.update(member.ids)
    return list(chosen.values())


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" \t"))


def layout(chosen: Sequence[Unit], line_comment: str) -> list[tuple[str, str]]:
    """(kind, text) parts: other files (each under a comment naming it), the imports, then
    the file's definitions, each part ending with a blank line."""
    parts: list[tuple[str, str]] = []
    others: dict[str, list[Unit]] = {}
    for unit in chosen:
        if unit.source:
            others.setdefault(unit.source, []).append(unit)

    def lines(units: list[Unit]) -> str:
        ordered = sorted(units, key=lambda u: u.order[1])
        out = []
        for unit, after in zip(ordered, ordered[1:] + [None]):
            text = unit.text
            if unit.python_stub and (after is None or _indent(after.text) <= _indent(text)):
                text += " ..."  # nothing of its body follows
            out.append(text + "\n")
        return "".join(out)

    if others:
        parts.append(
            (
                OTHER_FILES,
                "".join(
                    f"{line_comment} {label}\n" + lines(group) + "\n"
                    for label, group in others.items()
                ),
            )
        )
    imports = [u for u in chosen if not u.source and u.kind == IMPORTS]
    if imports:
        parts.append((IMPORTS, lines(imports) + "\n"))
    definitions = [u for u in chosen if not u.source and u.kind not in (IMPORTS, FOLLOWING)]
    if definitions:
        parts.append((DEFINITIONS, lines(definitions) + "\n"))
    following = [u for u in chosen if not u.source and u.kind == FOLLOWING]
    if following:
        part = (FOLLOWING, lines(following) + "\n")
        if FOLLOWING_FIRST:
            parts.insert(0, part)
        else:
            parts.append(part)
    return parts
