"""Context step: what the model should see for a request, chosen from the document store.

The pipeline is LSP message -> document store -> **context** -> prompt -> engine ->
post-processing -> LSP response. This module owns the data that flows out of the context
step (`CompletionContext`) and the functions that build it from a `Document`.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from bisect import bisect_right
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from codet5_lsp.server.languages import (DOC_DOUBLE_SLASH, DOC_HASH, DOC_JSDOC, DOC_PYTHON,
                                         DOC_TRIPLE_SLASH, LanguageSpec, spec_for)

if TYPE_CHECKING:
    import tree_sitter

    from codet5_lsp.server.documents import Document


@dataclass(frozen=True)
class CompletionContext:
    """Everything downstream steps need about the cursor, as plain strings and flags.

    `prefix`/`suffix` are already cut to the model's budget; `line_prefix`/`line_suffix` are
    the text of the cursor's line before/after the cursor (never cut). `next_lines` is the
    text after the cursor's line (a few lines, for repetition filters).
    """

    prefix: str
    suffix: str
    line_prefix: str
    line_suffix: str
    next_lines: str = ""
    language_id: str = "plaintext"
    multiline: bool = False
    in_string_or_comment: bool = False
    indent_unit: str = "    "
    extras: dict[str, str] = field(default_factory=dict)
    # one of mid_line / line_start / block_start / in_string / in_comment (see cursor_kind)
    cursor_kind: str = "mid_line"
    # True when the text before the cursor was over budget and cut (headers were added)
    prefix_truncated: bool = False
    # `prefix` as (kind, text) parts in prompt order (kinds: server/retrieval.py, e.g.
    # "imports", "definitions", "other_files", "cursor_window"); "".join of the texts is
    # `prefix`. Empty for contexts built without parts (the whole prefix is the window).
    prefix_parts: tuple[tuple[str, str], ...] = ()

    @property
    def mid_line(self) -> bool:
        """True when there is non-whitespace text after the cursor on its line."""
        return bool(self.line_suffix.strip())


# ---------------------------------------------------------------------------------------------
# Context extraction from a Document (store + tree-sitter). No tree_sitter.Query is created
# here (py-tree-sitter #472: dropping Query objects segfaults on 0.26.1); nodes are walked.
# ---------------------------------------------------------------------------------------------

MID_LINE = "mid_line"
LINE_START = "line_start"
BLOCK_START = "block_start"
IN_STRING = "in_string"
IN_COMMENT = "in_comment"

# Scanning budgets that keep context extraction O(window), not O(file).
_MAX_IMPORTS = 50
_IMPORT_SCAN_GIVE_UP = 40  # top-level statements after the last import before we stop
_INDENT_SAMPLE_LINES = 200
_NEIGHBOURS = 3

_RUBY_OPENERS = re.compile(
    r"^\s*(def|class|module|if|unless|while|until|for|begin|case|else|elsif|when|rescue|"
    r"ensure)\b|\bdo\s*(\|[^|]*\|)?\s*$")


@dataclass(frozen=True)
class Definition:
    """A function, method or class around a position, with what hover/docstrings need.

    Offsets are str offsets into `Document.text` (`*_byte` are UTF-8 byte offsets). `start`
    covers decorators/export/`const f =` wrappers; `source` is exactly `text[start:end]`.
    `source_without_docstring` is dedented (as if the definition were at column 0) and has
    the Python docstring removed; leading doc comments are outside `start..end` anyway.
    `body_hash` hashes that text after light whitespace normalisation (trailing spaces and
    blank lines dropped), so edits elsewhere in the file, re-indenting the definition or
    editing its docstring keep the hash, while any code change inside changes it.
    """

    kind: str  # "function" | "method" | "class"
    name: str
    language_id: str
    start: int
    end: int
    start_byte: int
    end_byte: int
    name_start: int
    name_end: int
    start_line: int  # where decorators/annotations/`export` start: doc comments go above
    end_line: int
    signature_line: int  # the line of the `def`/`fn`/`function` itself
    source: str
    source_without_docstring: str
    signature: str
    header: str  # the source lines from the signature's start through the body opener
    body_hash: str
    def_indent: str
    body_indent: str
    body_line: int | None  # line of the first body statement when it is below the header
    docstring: str | None = None
    docstring_range: tuple[int, int] | None = None  # str offsets

    @property
    def range(self) -> tuple[int, int]:
        return self.start, self.end

    @property
    def name_range(self) -> tuple[int, int]:
        return self.name_start, self.name_end


# ---- small helpers ----------------------------------------------------------------------------
def _node_text(doc: "Document", node: "tree_sitter.Node") -> str:
    return doc.source_bytes[node.start_byte:node.end_byte].decode("utf-8", "surrogatepass")


def _leading_ws(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def _tree_and_spec(doc: "Document") -> tuple["tree_sitter.Tree | None", LanguageSpec | None]:
    spec = spec_for(doc.language_id)
    if spec is None:
        return None, None
    return doc.tree, spec


def _chain(node: "tree_sitter.Node | None") -> Iterable["tree_sitter.Node"]:
    while node is not None:
        yield node
        node = node.parent


def _nodes_touching(tree: "tree_sitter.Tree", byte: int) -> list["tree_sitter.Node"]:
    """Ancestor chains of the nodes at `byte` and just before it (a node ending at `byte`)."""
    root = tree.root_node
    seen: dict[int, "tree_sitter.Node"] = {}
    for probe in {byte, max(byte - 1, 0)}:
        for node in _chain(root.descendant_for_byte_range(probe, probe)):
            seen.setdefault(node.id, node)
    return list(seen.values())


def _name_node(node: "tree_sitter.Node", spec: LanguageSpec) -> "tree_sitter.Node | None":
    name = node.child_by_field_name("name")
    if name is not None:
        return name
    if node.type == "impl_item":
        return node.child_by_field_name("type")
    declarator = node.child_by_field_name("declarator")  # C/C++: int *f(int a) {...}
    while declarator is not None:
        if declarator.type in ("identifier", "field_identifier", "qualified_identifier",
                               "destructor_name", "operator_name", "type_identifier"):
            return declarator
        inner = declarator.child_by_field_name("declarator")
        if inner is None:
            named = declarator.named_children
            inner = named[0] if named else None
        declarator = inner
    for child in node.named_children:  # Go: type_declaration -> type_spec name
        if child.type in ("type_spec", "type_alias"):
            return child.child_by_field_name("name")
    if node.type in spec.anonymous_functions and node.parent is not None:
        parent = node.parent
        field = {"variable_declarator": "name", "pair": "key", "assignment_expression": "left",
                 "public_field_definition": "name", "field_definition": "property"
                 }.get(parent.type)
        if field:
            return parent.child_by_field_name(field)
    return None


def _is_definition(node: "tree_sitter.Node", spec: LanguageSpec) -> bool:
    if node.type in spec.classes:
        return True
    if node.type not in spec.functions:
        return False
    return node.type not in spec.anonymous_functions or _name_node(node, spec) is not None


def _kind(node: "tree_sitter.Node", spec: LanguageSpec) -> str:
    if node.type in spec.classes:
        return "class"
    if node.type in ("method_declaration", "singleton_method", "method_definition",
                     "constructor_declaration", "destructor_declaration"):
        return "method"
    name = _name_node(node, spec)
    if name is not None and name.type == "qualified_identifier":
        return "method"  # C++ Box::get() defined out of line
    for ancestor in _chain(node.parent):
        if ancestor.type in spec.classes:
            return "method"
        if ancestor.type in spec.functions:
            return "function"
    return "function"


def _outer(node: "tree_sitter.Node", spec: LanguageSpec) -> "tree_sitter.Node":
    outer = node
    while outer.parent is not None and outer.parent.type in spec.wrappers:
        outer = outer.parent
    return outer


def _definition_nodes(doc: "Document", offset: int) -> list["tree_sitter.Node"]:
    """Definitions whose range contains `offset` (ends inclusive), innermost first."""
    tree, spec = _tree_and_spec(doc)
    if tree is None or spec is None:
        return []
    byte = doc.byte_offset_of(offset)
    found: dict[int, "tree_sitter.Node"] = {}
    for node in _nodes_touching(tree, byte):
        if node.type in spec.wrappers:  # `const f = () => {}`: the name is outside the arrow
            node = _definition_in(node, spec) or node
        if _is_definition(node, spec) and _outer(node, spec).start_byte <= byte <= node.end_byte:
            found.setdefault(node.id, node)
    return sorted(found.values(), key=lambda n: n.end_byte - n.start_byte)


# ---- Definition construction --------------------------------------------------------------
def _python_docstring(body: "tree_sitter.Node | None") -> "tree_sitter.Node | None":
    if body is None or body.named_child_count == 0:
        return None
    first = body.named_children[0]
    if first.type == "expression_statement" and first.named_child_count == 1 and \
            first.named_children[0].type in ("string", "concatenated_string"):
        return first
    return None


def _strip_python_string(literal: str) -> str:
    body = literal.lstrip("rRbBuUfF")
    for quote in ('"""', "'''", '"', "'"):
        if body.startswith(quote) and body.endswith(quote) and len(body) >= 2 * len(quote):
            return textwrap.dedent(body[len(quote):-len(quote)]).strip()
    return body.strip()


def _leading_doc_comment(doc: "Document", def_line: int, style: str,
                         language_grammar: str) -> tuple[str, int, int] | None:
    """The doc comment right above `def_line` in the language's style (text-based, so it
    works however the grammar attaches comments), as (text, start, end) str offsets."""
    line = def_line - 1
    if style == DOC_JSDOC:
        if line < 0 or not doc.line_text(line).rstrip().endswith("*/"):
            return None
        last = line
        while line >= 0 and "/*" not in doc.line_text(line):
            line -= 1
        if line < 0 or not doc.line_text(line).lstrip().startswith("/**") or last - line > 200:
            return None
        start = doc.line_start(line) + len(_leading_ws(doc.line_text(line)))
        raw = doc.text[start:doc.line_end(last)]
        inner = raw[3:-2] if raw.endswith("*/") else raw[3:]
        text = "\n".join(ln.strip().lstrip("*").strip() for ln in inner.splitlines()).strip()
        return text, start, doc.line_end(last)
    prefix = {DOC_TRIPLE_SLASH: "///", DOC_DOUBLE_SLASH: "//", DOC_HASH: "#"}.get(style)
    if prefix is None:
        return None
    while language_grammar == "rust" and line >= 0 and \
            doc.line_text(line).lstrip().startswith("#["):
        line -= 1  # attributes between the doc comment and the fn
    last = line
    while line >= 0 and doc.line_text(line).lstrip().startswith(prefix) and \
            not doc.line_text(line).lstrip().startswith("#!"):
        line -= 1
    first = line + 1
    if first > last:
        return None
    start = doc.line_start(first) + len(_leading_ws(doc.line_text(first)))
    lines = [doc.line_text(n).lstrip()[len(prefix):] for n in range(first, last + 1)]
    text = "\n".join(ln[1:] if ln.startswith(" ") else ln for ln in lines).strip()
    return text, start, doc.line_end(last)


def _normalise_for_hash(source: str) -> str:
    lines = (line.rstrip() for line in source.splitlines())
    return "\n".join(line for line in lines if line)


def _header_end_byte(node: "tree_sitter.Node", body: "tree_sitter.Node | None") -> int:
    """End of the signature: the last non-comment child before the body."""
    if body is None:
        return node.end_byte
    end = node.start_byte
    for child in node.children:
        if child.start_byte >= body.start_byte:
            break
        if "comment" not in child.type:
            end = child.end_byte
    return end


def _body_node(node: "tree_sitter.Node") -> "tree_sitter.Node | None":
    body = node.child_by_field_name("body")
    if body is None and node.type == "type_declaration":
        return None
    return body


def _signature_and_header(doc: "Document", node: "tree_sitter.Node", spec: LanguageSpec,
                          body: "tree_sitter.Node | None") -> tuple[str, str, int, int]:
    """(signature, header lines, signature end offset, signature end byte) of a definition.

    The signature runs from the definition (or its `const f =` statement) to the last
    non-comment child before the body; the header is the whole source lines from there
    through the body's opening brace, as they appear in the file (used in outlines).
    """
    outer = _outer(node, spec)
    sig_start_byte = outer.start_byte if node.type in spec.anonymous_functions \
        else node.start_byte
    header_end_byte = _header_end_byte(node, body)
    if header_end_byte <= sig_start_byte:
        header_end_byte = node.end_byte
    sig_start = doc.offset_of_byte(sig_start_byte)
    sig_end = doc.offset_of_byte(header_end_byte)
    signature = doc.text[sig_start:sig_end].strip()
    header_last = sig_end
    if body is not None and doc.source_bytes[body.start_byte:body.start_byte + 1] == b"{":
        header_last = max(header_last, doc.offset_of_byte(body.start_byte) + 1)
    header = doc.text[doc.line_start(doc.line_of(sig_start)):
                      doc.line_end(doc.line_of(header_last))]
    return signature, header, sig_end, header_end_byte


def _make_definition(doc: "Document", node: "tree_sitter.Node", spec: LanguageSpec,
                     indent_unit: str | None = None) -> Definition:
    outer = _outer(node, spec)
    start, end = doc.offset_of_byte(outer.start_byte), doc.offset_of_byte(node.end_byte)
    name_node = _name_node(node, spec)
    if name_node is not None:
        name = _node_text(doc, name_node)
        name_start = doc.offset_of_byte(name_node.start_byte)
        name_end = doc.offset_of_byte(name_node.end_byte)
    else:
        name, name_start, name_end = "", start, start
    start_line, end_line = doc.line_of(start), doc.line_of(end)
    def_indent = _leading_ws(doc.line_text(start_line))
    body = _body_node(node)

    signature, header, sig_end, _ = _signature_and_header(doc, node, spec, body)

    body_indent, body_line = None, None
    if body is not None:
        header_row = doc.line_of(sig_end)
        for child in body.named_children:
            child_line = doc.line_of(doc.offset_of_byte(child.start_byte))
            if child_line > header_row:
                body_line = child_line
                body_indent = _leading_ws(doc.line_text(child_line))
                break
    if body_indent is None:
        body_indent = def_indent + (indent_unit or detect_indent_unit(doc, start_line))

    docstring, doc_range = None, None
    source = doc.text[start:end]
    line_start = doc.line_start(start_line)
    if doc.text[line_start:start].strip():  # code before it on its line: not part of it
        line_start = start
    without = doc.text[line_start:end]
    if spec.doc_style == DOC_PYTHON and node.type in spec.functions | spec.classes:
        doc_node = _python_docstring(body)
        if doc_node is not None:
            ds = doc.offset_of_byte(doc_node.start_byte)
            de = doc.offset_of_byte(doc_node.end_byte)
            docstring = _strip_python_string(doc.text[ds:de])
            doc_range = (ds, de)
            cut_start, cut_end = ds, de
            ds_line = doc.line_of(ds)
            if not doc.text[doc.line_start(ds_line):ds].strip():
                cut_start = doc.line_start(ds_line)
            de_line = doc.line_of(de)
            if not doc.text[de:doc.line_end(de_line)].strip() and de_line + 1 < doc.line_count:
                cut_end = doc.line_start(de_line + 1)
            if cut_start >= line_start and cut_end <= end:
                without = doc.text[line_start:cut_start] + doc.text[cut_end:end]
    else:
        found = _leading_doc_comment(doc, start_line, spec.doc_style, spec.grammar)
        if found is not None:
            docstring, ds, de = found
            doc_range = (ds, de)
    without = textwrap.dedent(without.replace("\r\n", "\n").replace("\r", "\n"))
    body_hash = hashlib.sha256(_normalise_for_hash(without).encode("utf-8", "surrogatepass")
                               ).hexdigest()
    return Definition(
        kind=_kind(node, spec), name=name, language_id=doc.language_id, start=start, end=end,
        start_byte=outer.start_byte, end_byte=node.end_byte, name_start=name_start,
        name_end=name_end, start_line=start_line, end_line=end_line,
        signature_line=doc.line_of(doc.offset_of_byte(node.start_byte)), source=source,
        source_without_docstring=without, signature=signature, header=header,
        body_hash=body_hash, def_indent=def_indent, body_indent=body_indent,
        body_line=body_line, docstring=docstring, docstring_range=doc_range)


# ---- public queries ---------------------------------------------------------------------------
def _enclosing_nodes(doc: "Document", offset: int) -> list["tree_sitter.Node"]:
    """Definition nodes around `offset`, innermost first (see enclosing_definitions)."""
    nodes = _definition_nodes(doc, offset)
    spec = spec_for(doc.language_id)
    if spec is None or spec.grammar != "python":
        return nodes
    line = doc.line_of(offset)
    before = doc.text[doc.line_start(line):offset]
    if before.strip():
        return nodes
    # cursor in the leading whitespace of a line: a Python body deeper than the cursor's
    # column may continue here
    width = _width(before)
    previous = _previous_code_line(doc, line)
    if previous is None:
        return nodes
    known = {n.id for n in nodes}
    for node in _definition_nodes(doc, doc.line_end(previous)):
        def_line = doc.line_text(doc.line_of(doc.offset_of_byte(node.start_byte)))
        if node.id not in known and _width(_leading_ws(def_line)) < width:
            nodes.append(node)
    nodes.sort(key=lambda n: n.end_byte - n.start_byte)
    return nodes


def enclosing_definitions(doc: "Document", offset: int) -> list[Definition]:
    """Functions/methods/classes around `offset`, innermost first.

    Python bodies end at their last statement, so a cursor on a new (indented) line after it
    is still inside: for Python we also look from the last code line before the cursor and
    keep the definitions whose `def` is indented less than the cursor's line.
    """
    nodes = _enclosing_nodes(doc, offset)
    if not nodes:
        return []
    spec = spec_for(doc.language_id)
    assert spec is not None
    unit = detect_indent_unit(doc, doc.line_of(offset))
    return [_make_definition(doc, node, spec, unit) for node in nodes]


def enclosing_definition(doc: "Document", offset: int) -> Definition | None:
    """The innermost function, method or class around str `offset`, or None."""
    found = _definition_nodes(doc, offset)
    if not found:
        every = enclosing_definitions(doc, offset)
        return every[0] if every else None
    spec = spec_for(doc.language_id)
    assert spec is not None
    return _make_definition(doc, found[0], spec)


def definition_at(doc: "Document", position: object) -> Definition | None:
    """For hover: the innermost function/method whose name, signature or body holds the
    cursor. None on classes' own lines, imports, top-level code and blank lines between
    definitions (a definition's range ends at its last character)."""
    offset = doc.offset_at(position)
    spec = spec_for(doc.language_id)
    if spec is None:
        return None
    for node in _definition_nodes(doc, offset):
        if node.type in spec.functions:
            return _make_definition(doc, node, spec)
    return None


def _is_import(node: "tree_sitter.Node", spec: LanguageSpec, doc: "Document") -> bool:
    if node.type in spec.imports:
        return True
    if node.type == "expression_statement" and node.named_child_count and \
            node.named_children[0].type in spec.imports:
        return True
    if not spec.import_calls:
        return False
    if node.type == "call":  # Ruby: require 'json'
        method = node.child_by_field_name("method")
        return node.child_by_field_name("receiver") is None and method is not None and \
            _node_text(doc, method) in spec.import_calls
    if node.type in ("lexical_declaration", "variable_declaration", "expression_statement"):
        head = doc.source_bytes[node.start_byte:min(node.end_byte, node.start_byte + 300)]
        return any(f"{name}(".encode() in head.replace(b" (", b"(")
                   for name in spec.import_calls)
    return False


def import_nodes(doc: "Document") -> list[tuple[int, str]]:
    """(str offset, text) of the file's import statements (top level and namespaces).

    The scan stops 40 statements after the last import; the result is kept across edits
    made after the point where the scan stopped (typing in a function body far below the
    imports does not rescan them).
    """
    cached = doc.hints.get("imports")
    if cached is not None:
        mark, scan_end, found = cached  # type: ignore[misc]
        changed = doc.first_edit_offset_since(mark)
        if changed is None or changed > scan_end:
            return found
    tree, spec = _tree_and_spec(doc)
    found = []
    scan_end = len(doc.text)
    if tree is not None and spec is not None:
        stopped = _collect_imports(doc, tree.root_node, spec, found, 0)
        if stopped is not None:
            scan_end = doc.offset_of_byte(stopped)
    doc.hints["imports"] = (doc.edit_count, scan_end, found)
    return found


def _collect_imports(doc: "Document", parent: "tree_sitter.Node", spec: LanguageSpec,
                     found: list[tuple[int, str]], depth: int) -> int | None:
    """Append imports under `parent`; returns the byte where the scan gave up (None: it
    reached the end of `parent`)."""
    since_last = 0
    cursor = parent.walk()
    if not cursor.goto_first_child():
        return None
    while True:
        node = cursor.node
        if node is not None and node.is_named:
            if _is_import(node, spec, doc):
                found.append((doc.offset_of_byte(node.start_byte), _node_text(doc, node).strip()))
                since_last = 0
                if len(found) >= _MAX_IMPORTS:
                    return node.end_byte
            elif node.type in spec.import_containers and depth < 2:
                stopped = _collect_imports(doc, node, spec, found, depth + 1)
                if stopped is not None and len(found) >= _MAX_IMPORTS:
                    return stopped
            elif "comment" not in node.type:
                since_last += 1
                if since_last > _IMPORT_SCAN_GIVE_UP:
                    return node.end_byte
        if not cursor.goto_next_sibling():
            return None


def imports(doc: "Document") -> list[str]:
    """Text of the file's import statements, in file order."""
    return [text for _, text in import_nodes(doc)]


def _header_of(doc: "Document", node: "tree_sitter.Node", spec: LanguageSpec) -> str:
    return _signature_and_header(doc, node, spec, _body_node(node))[1]


def outline(doc: "Document", offset: int) -> list[str]:
    """Header lines near the cursor, in file order: the enclosing class's header, then up to
    3 definitions before the enclosing one (or the cursor), itself, and up to 3 after."""
    tree, spec = _tree_and_spec(doc)
    if tree is None or spec is None:
        return []
    nodes = _definition_nodes(doc, offset)
    out: list[str] = []
    classes = [n for n in nodes if n.type in spec.classes]
    if classes:
        out.append(_header_of(doc, classes[0], spec))
    if nodes:
        anchor = _outer(nodes[0], spec)
    else:
        anchor = top_level_item_at(tree.root_node, doc.byte_offset_of(offset))
        if anchor is None:
            return out
    before: list[str] = []
    sibling = anchor.prev_named_sibling
    while sibling is not None and len(before) < _NEIGHBOURS:
        definition = _definition_in(sibling, spec)
        if definition is not None:
            before.append(_header_of(doc, definition, spec))
        sibling = sibling.prev_named_sibling
    after: list[str] = []
    sibling = anchor.next_named_sibling
    while sibling is not None and len(after) < _NEIGHBOURS:
        definition = _definition_in(sibling, spec)
        if definition is not None:
            after.append(_header_of(doc, definition, spec))
        sibling = sibling.next_named_sibling
    own = _definition_in(anchor, spec)
    middle = [_header_of(doc, own, spec)] if own is not None and nodes \
        and own.type not in spec.classes else []
    return out + before[::-1] + middle + after


def top_level_item_at(root: "tree_sitter.Node", byte: int) -> "tree_sitter.Node | None":
    """The top-level item holding `byte`, else the first one after it, else the last one.

    Not `Node.first_named_child_for_byte`: in py-tree-sitter 0.25.2 it crashes the process
    (SIGSEGV) when no child ends after `byte`, e.g. with the cursor in a file's trailing blank
    lines (tests/test_treesitter_crash.py). A bisection over named_child(i) is O(log n) too.
    """
    count = root.named_child_count
    if count == 0:
        return None
    lo, hi = 0, count  # first child whose end_byte > byte
    while lo < hi:
        mid = (lo + hi) // 2
        if root.named_child(mid).end_byte > byte:
            hi = mid
        else:
            lo = mid + 1
    return root.named_child(min(lo, count - 1))


def items_around(anchor: "tree_sitter.Node", scan_bytes: int,
                 anchor_bytes: int) -> list["tree_sitter.Node"]:
    """`anchor` and its named siblings, nearest first on both sides alternately, until about
    `scan_bytes` of source are covered (`anchor_bytes` counts for the anchor itself)."""
    items, seen = [anchor], anchor_bytes
    before, after = anchor.prev_named_sibling, anchor.next_named_sibling
    while (before is not None or after is not None) and seen < scan_bytes:
        for sibling in (before, after):
            if sibling is not None:
                items.append(sibling)
                seen += sibling.end_byte - sibling.start_byte
        before = before.prev_named_sibling if before is not None else None
        after = after.next_named_sibling if after is not None else None
    return items


def _definition_in(node: "tree_sitter.Node", spec: LanguageSpec) -> "tree_sitter.Node | None":
    """`node` if it is a definition, or the definition it wraps (decorators, export, ...)."""
    for _ in range(4):
        if _is_definition(node, spec):
            return node
        if node.type not in spec.wrappers or node.named_child_count == 0:
            return None
        inner = node.child_by_field_name("definition") or \
            node.child_by_field_name("declaration") or node.child_by_field_name("value") or \
            node.named_children[-1]
        node = inner
    return None


# ---- cursor classification --------------------------------------------------------------------
def _scan_line_prefix(prefix: str, line_comment: str | None) -> str | None:
    """Text-only fallback: IN_STRING / IN_COMMENT from quotes and comment markers."""
    quote: str | None = None
    i = 0
    while i < len(prefix):
        ch = prefix[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif line_comment and prefix.startswith(line_comment, i):
            return IN_COMMENT
        i += 1
    return IN_STRING if quote else None


def _tree_string_or_comment(doc: "Document", offset: int) -> str | None:
    tree, spec = _tree_and_spec(doc)
    if tree is None or spec is None:
        return None
    byte = doc.byte_offset_of(offset)
    root = tree.root_node
    for probe in (byte, max(byte - 1, 0)):
        for node in _chain(root.descendant_for_byte_range(probe, probe)):
            if node.type in spec.interpolations and node.start_byte < byte < node.end_byte:
                break
            if node.type in spec.comments:
                inside = node.start_byte < byte < node.end_byte
                at_end_of_line_comment = byte == node.end_byte and \
                    not doc.source_bytes[node.start_byte:node.end_byte].rstrip().endswith(b"*/")
                if inside or (at_end_of_line_comment and node.start_byte < byte):
                    return IN_COMMENT
            if node.type in spec.strings and node.start_byte < byte < node.end_byte:
                return IN_STRING
            if node.type in spec.functions or node.type in spec.classes:
                break
    return None


def _previous_code_line(doc: "Document", line: int) -> int | None:
    for candidate in range(line - 1, max(line - 50, -1), -1):
        if doc.line_text(candidate).strip():
            return candidate
    return None


def _next_code_line(doc: "Document", line: int) -> int | None:
    for candidate in range(line + 1, min(line + 50, doc.line_count)):
        if doc.line_text(candidate).strip():
            return candidate
    return None


def _opens_block(code: str, spec: LanguageSpec | None) -> bool:
    code = code.rstrip()
    style = spec.block_opener if spec else None
    if style == ":":
        code = re.sub(r"\s+#.*$", "", code) if "#" in code else code
        return code.endswith(":")
    if style == "keyword":
        return bool(_RUBY_OPENERS.search(code)) or code.endswith("{")
    if style == "{":
        code = re.sub(r"\s*//.*$", "", code) if "//" in code else code
        return code.endswith("{")
    return code.endswith((":", "{"))


def _width(indent: str) -> int:
    return len(indent.expandtabs(8))


def cursor_kind(doc: "Document", offset: int) -> str:
    """One of in_string / in_comment / block_start / line_start / mid_line.

    block_start: only blanks around the cursor on its line, the previous code line opens a
    block (`:` in Python, `{`, Ruby's def/do/...), and that block has no body yet (the next
    code line is not indented deeper than the opener, or there is none).
    """
    line = doc.line_of(offset)
    line_start = doc.line_start(line)
    prefix = doc.text[line_start:offset]
    suffix = doc.text[offset:doc.line_end(line)]
    from_tree = _tree_string_or_comment(doc, offset)
    if from_tree is not None:
        return from_tree
    spec = spec_for(doc.language_id)
    if spec is not None or doc.language_id not in ("plaintext", ""):
        fallback = _scan_line_prefix(prefix, spec.line_comment if spec else None)
        if fallback is not None and (doc.tree is None or _near_error(doc, offset)):
            return fallback
    if prefix.strip():
        return MID_LINE
    if suffix.strip():
        return LINE_START
    opener = _previous_code_line(doc, line)
    if opener is not None and _opens_block(doc.line_text(opener), spec):
        opener_width = _width(_leading_ws(doc.line_text(opener)))
        following = _next_code_line(doc, line)
        if following is None or _width(_leading_ws(doc.line_text(following))) <= opener_width:
            return BLOCK_START
    return LINE_START


def _near_error(doc: "Document", offset: int) -> bool:
    """True when a syntax error (ERROR or MISSING node) touches the cursor's line before it:
    then the tree cannot be trusted about strings/comments there (unterminated quotes)."""
    tree = doc.tree
    if tree is None or not tree.root_node.has_error:
        return False
    end = doc.byte_offset_of(offset)
    start = doc.byte_offset_of(doc.line_start(doc.line_of(offset)))
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            return True
        if not node.has_error:
            continue
        stack.extend(child for child in node.children
                     if child.end_byte >= start and child.start_byte <= end)
    return False


def detect_indent_unit(doc: "Document", around_line: int = 0) -> str:
    """The document's indent unit ("\\t" or N spaces), from up to 200 lines around
    `around_line` (most common indentation step); reused for the next 200 edits."""
    key = ("indent_unit", around_line // _INDENT_SAMPLE_LINES)
    cached = doc.hints.get(key)
    if cached is not None and doc.edit_count - cached[0] < 200:  # type: ignore[index]
        return cached[1]  # type: ignore[index]
    first = max(0, around_line - _INDENT_SAMPLE_LINES // 2)
    last = min(doc.line_count - 1, around_line + _INDENT_SAMPLE_LINES // 2)
    sample = doc.text[doc.line_start(first):doc.line_end(last)].splitlines()
    tabs = spaces = 0
    deltas: Counter[int] = Counter()
    previous = 0
    for text in sample:
        stripped = text.lstrip(" \t")
        if not stripped:
            continue
        if text[0] == "\t":
            tabs += 1
            continue
        width = len(text) - len(stripped)
        if width:
            spaces += 1
        if width > previous and width - previous in (2, 3, 4, 8):
            deltas[width - previous] += 1
        previous = width
    if tabs > spaces:
        unit = "\t"
    elif deltas:
        unit = " " * deltas.most_common(1)[0][0]
    else:
        spec = spec_for(doc.language_id)
        unit = {"go": "\t", "ruby": "  "}.get(spec.grammar if spec else "", "    ")
    doc.hints[key] = (doc.edit_count, unit)
    return unit


# ---- token budgets ----------------------------------------------------------------------------
CountTokens = Callable[[str], int]

# A token is rarely longer than this many chars; bounds every window we tokenize.
_MAX_CHARS_PER_TOKEN = 32
_FIRST_GUESS_CHARS_PER_TOKEN = 4
_GOOD_ENOUGH = 0.88  # stop searching once a window uses this share of the budget
_AIM = 0.94  # aim a little under the budget so the first guess usually fits


def _largest_fitting(lengths: Sequence[int], tokens_of: Callable[[int], int], budget: int,
                     ratio: float) -> tuple[tuple[int, int] | None, float]:
    """((length, tokens) of the longest window in `lengths` (ascending) within `budget`,
    or None; and the last chars-per-token ratio seen).

    Token counting is the expensive part (a tokenizer call per probe), so this is an
    interpolation search seeded with `ratio` (chars per token): each probe's ratio predicts
    where the budget ends. It alternates with bisection so it always ends in O(log n)
    probes, and stops once a window uses 88% of the budget: usually 1-2 probes.
    """
    lo, hi = -1, len(lengths)  # lengths[lo] fits (lo=-1: none known), lengths[hi] does not
    best: tuple[int, int] | None = None
    probes = 0
    while hi - lo > 1:
        if probes < 2 or probes % 2 == 0:
            index = bisect_right(lengths, budget * ratio * _AIM) - 1
        else:
            index = (lo + hi) // 2
        index = min(max(index, lo + 1), hi - 1)
        length = lengths[index]
        tokens = tokens_of(length)
        probes += 1
        if tokens > 0:
            ratio = length / tokens
        if tokens <= budget:
            lo, best = index, (length, tokens)
            if tokens >= budget * _GOOD_ENOUGH:
                break
        else:
            hi = index
    return best, ratio


def _fit_backward(doc: "Document", end: int, budget: int, count: CountTokens,
                  whole_lines: bool = True) -> tuple[int, int]:
    """(start, tokens): the longest text[start:end] within `budget`, starting at a line
    start when `whole_lines` (cut inside the line only when even one line is too long)."""
    if budget <= 0 or end == 0:
        return end, 0
    text = doc.text
    low = max(0, end - budget * _MAX_CHARS_PER_TOKEN)
    ratio = _ratio_hint(doc)

    def tokens_of(length: int) -> int:
        return count(text[end - length:end])

    found = None
    if whole_lines:
        starts = doc.line_starts_between(low, end - 1)
        found, ratio = _largest_fitting([end - s for s in reversed(starts)], tokens_of, budget,
                                        ratio)
        if found is None:  # only the cursor's line is left
            low = max(low, doc.line_start(doc.line_of(end)))
    if found is None:
        found, ratio = _largest_fitting(range(1, end - low + 1), tokens_of, budget, ratio)
    _remember_ratio(doc, ratio)
    return (end - found[0], found[1]) if found is not None else (end, 0)


def _fit_forward(doc: "Document", start: int, budget: int, count: CountTokens) -> int:
    """End of the longest text[start:end] within `budget`, ending after a line break when
    possible (else inside the cursor's line)."""
    text = doc.text
    if budget <= 0 or start >= len(text):
        return start
    high = min(len(text), start + budget * _MAX_CHARS_PER_TOKEN)
    ratio = _ratio_hint(doc)

    def tokens_of(length: int) -> int:
        return count(text[start:start + length])

    ends = doc.line_starts_between(start + 1, high)
    if high == len(text) and (not ends or ends[-1] != high):
        ends.append(high)
    found, ratio = _largest_fitting([e - start for e in ends], tokens_of, budget, ratio)
    if found is None:
        line_end = min(doc.line_end(doc.line_of(start)), high)
        found, ratio = _largest_fitting(range(1, line_end - start + 1), tokens_of, budget,
                                        ratio)
    return start + found[0] if found is not None else start


def _ratio_hint(doc: "Document") -> float:
    """Chars per token seen last time in this document (survives edits), else 4."""
    return float(doc.hints.get("chars_per_token", _FIRST_GUESS_CHARS_PER_TOKEN))


def _remember_ratio(doc: "Document", ratio: float) -> None:
    if 0.5 <= ratio <= _MAX_CHARS_PER_TOKEN:
        doc.hints["chars_per_token"] = ratio


def _pick_within(items: list[tuple[int, str]], budget: int, count: CountTokens,
                 ratio: float, keep_last: bool) -> tuple[list[tuple[int, str]], int]:
    """As many `items` as fit `budget` tokens (the last ones when `keep_last`, else the first:
    imports), with their token count. Pre-cut by chars, then
    usually one tokenizer call."""
    if not items or budget <= 0:
        return [], 0
    chosen = list(items)
    limit = budget * ratio * 1.2
    while chosen and sum(len(t) + 1 for _, t in chosen) > limit:
        chosen.pop(0 if keep_last else -1)
    for _ in range(3):
        if not chosen:
            break
        tokens = count("".join(t + "\n" for _, t in chosen))
        if tokens <= budget:
            return chosen, tokens
        keep = max(0, min(len(chosen) - 1, int(len(chosen) * budget / tokens)))
        chosen = chosen[len(chosen) - keep:] if keep_last else chosen[:keep]
    return [], 0


# ---- similar function: the tree-sitter context selection used for completions -------------
_IDENTIFIER = re.compile(rb"[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*")  # non-ASCII: letters
# Keywords shared by many of our languages: they match everywhere and would only add noise.
_COMMON_KEYWORDS = frozenset(
    b"and as async await break case catch class const continue def default del do elif else "
    b"enum except export extends false final finally fn for from func function go if impl "
    b"import in interface is let match mut new nil none not null or package pass private "
    b"protected pub public raise return self static struct super switch this throw true try "
    b"type use var void while with yield".split())
SIMILAR_QUERY_LINES = 10  # the lines before the cursor that describe what is being written
SIMILAR_SCAN_BYTES = 16_000  # look at the definitions this close to the cursor, no further
SIMILAR_SHARE = 3  # the similar function gets at most 1/3 of the budget
IMPORT_SHARE = 8  # the imports at most 1/8


def identifiers(source: bytes | str) -> frozenset[bytes]:
    """Identifier-like words of `source` (UTF-8), without one-letter names and common
    keywords. Bytes, because the scan works on the document's bytes (no offset mapping)."""
    if isinstance(source, str):
        source = source.encode("utf-8", "surrogatepass")
    return frozenset(w for w in set(_IDENTIFIER.findall(source))
                     if len(w) > 1 and w.lower() not in _COMMON_KEYWORDS)


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


_IDENTIFIER_CACHE_SIZE = 1024


def _cached_identifiers(doc: "Document", source: bytes) -> frozenset[bytes]:
    """identifiers(source), remembered per document across edits: the functions around the
    cursor rarely change between two keystrokes, and scanning them is the costly part."""
    cache = doc.hints.get("identifier_sets")
    if cache is None:
        cache = doc.hints["identifier_sets"] = OrderedDict()
    return _lru_lookup(cache, source, identifiers, _IDENTIFIER_CACHE_SIZE)


def _lru_lookup(cache: OrderedDict, key, compute: Callable, limit: int):
    """cache[key], computed with compute(key) on a miss; the least recently used entry goes
    once the cache holds more than `limit`."""
    found = cache.get(key)
    if found is None:
        found = cache[key] = compute(key)
        if len(cache) > limit:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return found


def _functions_in(node: "tree_sitter.Node", spec: LanguageSpec, depth: int = 2
                  ) -> Iterable["tree_sitter.Node"]:
    """Function definitions at `node`: itself, or the methods of a class (one level)."""
    definition = _definition_in(node, spec)
    if definition is None:
        return
    if definition.type in spec.functions:
        yield definition
    elif definition.type in spec.classes and depth > 0:
        body = _body_node(definition)
        for child in (body.named_children if body is not None else ()):
            yield from _functions_in(child, spec, depth - 1)


def nearby_functions(doc: "Document", offset: int, scan_bytes: int = SIMILAR_SCAN_BYTES
                     ) -> list[tuple[int, int]]:
    """(start, end) UTF-8 byte offsets of the functions and methods near str `offset`
    (top-level items outward from the cursor's, both directions, until `scan_bytes` of
    source were visited)."""
    tree, spec = _tree_and_spec(doc)
    if tree is None or spec is None:
        return []
    root = tree.root_node
    anchor = top_level_item_at(root, doc.byte_offset_of(offset))
    if anchor is None:
        return []
    items = items_around(anchor, scan_bytes, anchor.end_byte - anchor.start_byte)
    spans = []
    for item in items:
        for function in _functions_in(item, spec):
            spans.append((_outer(function, spec).start_byte, function.end_byte))
    return sorted(spans)


def most_similar_function(doc: "Document", offset: int, window_start: int) -> str | None:
    """Source of the function most like the code being written, among those not already in
    the window [window_start, offset) (str offsets) and not enclosing the cursor; None if
    none shares a word with it.

    Why: code repeats itself within a file (the same calls, names and shapes); a small model
    copies well from what it sees, and this is the text most likely to hold the rest of the
    line, even when it sits far from the cursor or below it. Similarity is the Jaccard index
    of identifier sets against the last SIMILAR_QUERY_LINES lines, as in Copilot's
    neighbouring-snippet retrieval, but over whole definitions found with tree-sitter.
    """
    data = doc.source_bytes
    cursor, window = doc.byte_offset_of(offset), doc.byte_offset_of(window_start)
    line = doc.line_of(offset)
    query = identifiers(data[doc.byte_offset_of(doc.line_start(max(0, line - SIMILAR_QUERY_LINES))):
                             cursor])
    if not query:
        return None
    best: tuple[float, int, int] | None = None
    for start, end in nearby_functions(doc, offset):
        if start <= cursor <= end or window <= start and end <= cursor:
            continue  # encloses the cursor, or is already in the window
        if start < window < end:
            end = window  # only the part that fell out of the window
        score = jaccard(query, _cached_identifiers(doc, bytes(data[start:end])))
        if score > 0 and (best is None or score > best[0]):
            best = (score, start, end)
    if best is None:
        return None
    return doc.text[doc.offset_of_byte(best[1]):doc.offset_of_byte(best[2])]


def _head_within(source: str, budget: int, count: CountTokens, ratio: float
                 ) -> tuple[str, int]:
    """(text, tokens): the first lines of `source` within `budget` tokens (("", 0) if not
    even one line fits).

    Lines are first cut to about `budget * ratio` characters (`ratio`: chars per token seen in
    this document), so one tokenizer call usually settles it."""
    lines, used = [], 0
    for line in source.rstrip().splitlines():
        used += len(line) + 1
        if lines and used > budget * ratio * 1.5:
            break
        lines.append(line)
    while lines:
        text = "\n".join(lines) + "\n"
        tokens = count(text)
        if tokens <= budget:
            return text, tokens
        lines = lines[: int(len(lines) * 0.8)] if len(lines) > 1 else []
    return "", 0


_COUNT_CACHE_SIZE = 64


def _remembered_counts(doc: "Document", count: CountTokens) -> CountTokens:
    """`count`, remembering results per document across edits, for the parts that usually
    stay the same from one keystroke to the next (the imports, the similar function)."""
    owner = getattr(count, "__self__", count)  # the tokenizer behind a bound method
    cache = doc.hints.get("token_counts")
    if cache is None or cache[0] is not owner:
        cache = doc.hints["token_counts"] = (owner, OrderedDict())
    counts: OrderedDict[str, int] = cache[1]
    return lambda text: _lru_lookup(counts, text, count, _COUNT_CACHE_SIZE)


def _fit_prefix_with_similar_function(doc: "Document", offset: int, count: CountTokens,
                                      budget: int) -> tuple[str, bool]:
    """The prefix within `budget`: the text nearest the cursor, from a line start. When the
    file is longer than that, two things that fell out of the window go first, each followed
    by a blank line: the file's imports (at most 1/IMPORT_SHARE of the budget), then the
    first lines of the most similar function (at most 1/SIMILAR_SHARE)."""
    text = doc.text
    if budget <= 0:
        return "", offset > 0
    if 4 * offset <= budget:  # a token is at least one UTF-8 byte: surely fits
        return text[:offset], False
    ratio = _ratio_hint(doc)
    if offset <= budget * ratio * 1.25:  # may fit: find out before choosing what to add
        window_start, _ = _fit_backward(doc, offset, budget, count)
        if window_start == 0:
            return text[:offset], False
    else:  # surely cut: an estimate of the window is enough to choose what to add
        window_start = max(0, offset - int(budget * ratio))
    stable_count = _remembered_counts(doc, count)
    imported = [(s, t) for s, t in import_nodes(doc) if s < window_start]
    imported, import_tokens = _pick_within(imported, budget // IMPORT_SHARE - 1, stable_count,
                                           ratio, keep_last=False)
    similar = most_similar_function(doc, offset, window_start)
    snippet, snippet_tokens = _head_within(similar, budget // SIMILAR_SHARE - 1, stable_count,
                                           ratio) if similar else ("", 0)
    snippet = snippet + "\n" if snippet else ""
    # Parts joined at line breaks: their counts add up (+1 per blank line, an upper bound).
    head_tokens = (import_tokens + 1 if imported else 0) + (snippet_tokens + 1 if snippet else 0)
    window_start, _ = _fit_backward(doc, offset, budget - head_tokens, count)
    if window_start == 0:
        return text[:offset], False
    # an import inside the final window (longer than estimated) is not repeated
    kept = [t for s, t in imported if s < window_start]
    head = ("".join(t + "\n" for t in kept) + "\n" if kept else "") + snippet
    return head + text[window_start:offset], True


def _fit_suffix(doc: "Document", offset: int, count: CountTokens, budget: int) -> str:
    return doc.text[offset:_fit_forward(doc, offset, budget, count)]


def _base_fields(doc: "Document", offset: int) -> dict[str, object]:
    line = doc.line_of(offset)
    line_end = doc.line_end(line)
    line_prefix = doc.text[doc.line_start(line):offset]
    line_suffix = doc.text[offset:line_end]
    next_lines = "\n".join(doc.lines(line + 1, line + 4))
    kind = cursor_kind(doc, offset)
    return dict(line_prefix=line_prefix, line_suffix=line_suffix, next_lines=next_lines,
                language_id=doc.language_id, multiline=kind == BLOCK_START,
                in_string_or_comment=kind in (IN_STRING, IN_COMMENT),
                indent_unit=detect_indent_unit(doc, line), cursor_kind=kind)


def build_completion_context(doc: "Document", position: object, count_tokens: CountTokens,
                             max_prefix_tokens: int, max_suffix_tokens: int,
                             open_documents: Sequence["Document"] = ()
                             ) -> CompletionContext:
    """What the model sees for a completion at `position` (see CompletionContext).

    If the text before the cursor is over budget, the text nearest the cursor is kept (from
    a line start), and up to 1/HEAD_SHARE of the budget goes before it to the lines that
    carry the names the next line is likely to need: signatures of definitions in other
    `open_documents` (same language) that the file imports or uses near the cursor, the
    file's imports, the signatures, attributes and constants of the code around the cursor,
    and (when no suffix is shown, i.e. outside infill) the lines right after the cursor's
    (_fit_prefix_with_retrieval, server/retrieval.py). `prefix_parts` says which part is
    which. Token counts are taken per part; joining them at a line break does not add tokens
    with the CodeT5 byte-level BPE.
    """
    offset = doc.offset_at(position)
    parts, truncated = _fit_prefix_with_retrieval(doc, offset, count_tokens,
                                                  max_prefix_tokens, open_documents,
                                                  infill=max_suffix_tokens > 0)
    suffix = _fit_suffix(doc, offset, count_tokens, max_suffix_tokens)
    fields = _base_fields(doc, offset)
    return CompletionContext(prefix="".join(text for _, text in parts), suffix=suffix,
                             prefix_truncated=truncated, prefix_parts=tuple(parts),
                             **fields)  # type: ignore[arg-type]


def similar_function_context(doc: "Document", position: object, count_tokens: CountTokens,
                             max_prefix_tokens: int, max_suffix_tokens: int
                             ) -> CompletionContext:
    """The previous selection (imports + the most similar function + window), kept for the
    comparisons of bench/context_quality.py."""
    offset = doc.offset_at(position)
    prefix, truncated = _fit_prefix_with_similar_function(doc, offset, count_tokens,
                                                          max_prefix_tokens)
    suffix = _fit_suffix(doc, offset, count_tokens, max_suffix_tokens)
    fields = _base_fields(doc, offset)
    return CompletionContext(prefix=prefix, suffix=suffix, prefix_truncated=truncated,
                             **fields)  # type: ignore[arg-type]


# The lines before the window get at most 1/HEAD_SHARE of the budget: more raises identifier
# recall but shortens the window, which the labmodel uses (docs/context-selection.md).
HEAD_SHARE = 6


def _fit_prefix_with_retrieval(doc: "Document", offset: int, count: CountTokens, budget: int,
                               open_documents: Sequence["Document"] = (), infill: bool = False
                               ) -> tuple[list[tuple[str, str]], bool]:
    """(parts, truncated): the prefix within `budget` as (kind, text) parts, the cursor
    window last (see build_completion_context and server/retrieval.py). With `infill` the
    prompt shows the text after the cursor anyway: the lines after it are not repeated."""
    from codet5_lsp.server import retrieval as R

    text = doc.text
    if budget <= 0:
        return [], offset > 0
    if 4 * offset <= budget:  # a token is at least one UTF-8 byte: surely fits
        return [(R.WINDOW, text[:offset])], False
    ratio = _ratio_hint(doc)
    head_budget = budget // HEAD_SHARE
    if offset <= budget * ratio * 1.25:  # may fit: find out before choosing what to add
        whole_start, _ = _fit_backward(doc, offset, budget, count)
        if whole_start == 0:
            return [(R.WINDOW, text[:offset])], False
    # an estimate of the final window is enough to choose what goes before it
    window_start = max(0, offset - int((budget - head_budget) * ratio))
    window_start = doc.line_start(doc.line_of(window_start))
    units, weights = R.document_units(
        doc, offset, window_start, following_lines=0 if infill else R.FOLLOWING_LINES)
    if open_documents:
        names = R.imported_names(doc, window_start, offset)
        units += R.other_document_units(doc, names, open_documents)
    spec = spec_for(doc.language_id)
    comment = spec.line_comment if spec is not None else "#"
    covered = identifiers(doc.source_bytes[doc.byte_offset_of(window_start):
                                           doc.byte_offset_of(offset)])
    stable_count = _remembered_counts(doc, count)
    chars = head_budget * ratio
    head: list[tuple[str, str]] = []
    head_tokens = 0
    for _ in range(3):
        chosen = R.choose_units(units, weights, covered, chars)
        head = R.layout(chosen, comment)
        head_tokens = stable_count("".join(t for _, t in head)) if head else 0
        if head_tokens <= head_budget:
            break
        chars *= 0.85 * head_budget / head_tokens
    else:
        chosen, head, head_tokens = [], [], 0
    final_start, _ = _fit_backward(doc, offset, budget - head_tokens, count)
    if final_start == 0:
        return [(R.WINDOW, text[:offset])], False
    if final_start < window_start:  # the window grew over some chosen lines: not twice
        first_row, cursor_row = doc.line_of(final_start), doc.line_of(offset)
        kept = [u for u in chosen if u.source or not first_row <= u.order[1] <= cursor_row]
        if len(kept) < len(chosen):
            head = R.layout(kept, comment)
    return head + [(R.WINDOW, text[final_start:offset])], True


def last_n_tokens_context(doc: "Document", position: object, count_tokens: CountTokens,
                          max_prefix_tokens: int, max_suffix_tokens: int
                          ) -> CompletionContext:
    """Baseline for quality comparisons: the plain last-N-tokens window (cut anywhere, no
    imports or scope headers), with the same suffix and flags as build_completion_context."""
    offset = doc.offset_at(position)
    start, _ = _fit_backward(doc, offset, max_prefix_tokens, count_tokens, whole_lines=False)
    suffix = _fit_suffix(doc, offset, count_tokens, max_suffix_tokens)
    fields = _base_fields(doc, offset)
    return CompletionContext(prefix=doc.text[start:offset], suffix=suffix,
                             prefix_truncated=start > 0, **fields)  # type: ignore[arg-type]
