"""Syntax facts: what the tree (and, where it cannot say, the text) tells about a position.

The pipeline is LSP message -> document store -> context -> prompt -> engine -> post-processing
-> LSP response. The context step (server/context.py, server/retrieval.py) and hover ask this
module what is around the cursor: the definitions (`Definition`: name, signature, body,
docstring or doc comment), the file's imports, the cursor's kind (in a string, in a comment,
at a block start ...), the indentation unit, the top-level items around the cursor and the
functions next to a definition. Everything here reads a `Document`; nothing chooses what the
model sees.

No tree_sitter.Query is created here (py-tree-sitter #472: dropping Query objects segfaults
on 0.26.1); nodes are walked.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codet5_lsp.server.languages import (
    DOC_DOUBLE_SLASH,
    DOC_HASH,
    DOC_JSDOC,
    DOC_PYTHON,
    DOC_TRIPLE_SLASH,
    LanguageSpec,
    spec_for,
)

if TYPE_CHECKING:
    import tree_sitter

    from codet5_lsp.server.documents import Document

# What the cursor is in or at (cursor_kind).
MID_LINE = "mid_line"
LINE_START = "line_start"
BLOCK_START = "block_start"
IN_STRING = "in_string"
IN_COMMENT = "in_comment"

# Scanning budgets that keep context extraction O(window), not O(file).
_MAX_IMPORTS = 50
_IMPORT_SCAN_GIVE_UP = 40  # top-level statements after the last import before we stop
_INDENT_SAMPLE_LINES = 200

_RUBY_OPENERS = re.compile(
    r"^\s*(def|class|module|if|unless|while|until|for|begin|case|else|elsif|when|rescue|"
    r"ensure)\b|\bdo\s*(\|[^|]*\|)?\s*$"
)


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
    body_hash: str
    def_indent: str
    body_indent: str
    body_line: int | None  # line of the first body statement when it is below the header
    docstring: str | None = None
    docstring_range: tuple[int, int] | None = None  # str offsets


# ---- small helpers ----------------------------------------------------------------------------
def _node_text(doc: "Document", node: "tree_sitter.Node") -> str:
    return doc.source_bytes[node.start_byte : node.end_byte].decode("utf-8", "surrogatepass")


def leading_ws(line: str) -> str:
    """The spaces and tabs that start `line`."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def tree_and_spec(doc: "Document") -> tuple["tree_sitter.Tree | None", LanguageSpec | None]:
    """The document's tree and its language's node types; (None, None) for a language we
    have no grammar for (the tree is None while it cannot be had: see `Document.tree`)."""
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


def name_node(node: "tree_sitter.Node", spec: LanguageSpec) -> "tree_sitter.Node | None":
    """The node naming a definition (C declarators, Go type specs and `const f = () => {}`
    included), or None for an anonymous one."""
    name = node.child_by_field_name("name")
    if name is not None:
        return name
    if node.type == "impl_item":
        return node.child_by_field_name("type")
    declarator = node.child_by_field_name("declarator")  # C/C++: int *f(int a) {...}
    while declarator is not None:
        if declarator.type in (
            "identifier",
            "field_identifier",
            "qualified_identifier",
            "destructor_name",
            "operator_name",
            "type_identifier",
        ):
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
        field = {
            "variable_declarator": "name",
            "pair": "key",
            "assignment_expression": "left",
            "public_field_definition": "name",
            "field_definition": "property",
        }.get(parent.type)
        if field:
            return parent.child_by_field_name(field)
    return None


def _is_definition(node: "tree_sitter.Node", spec: LanguageSpec) -> bool:
    if node.type in spec.classes:
        return True
    if node.type not in spec.functions:
        return False
    return node.type not in spec.anonymous_functions or name_node(node, spec) is not None


def _kind(node: "tree_sitter.Node", spec: LanguageSpec) -> str:
    if node.type in spec.classes:
        return "class"
    if node.type in (
        "method_declaration",
        "singleton_method",
        "method_definition",
        "constructor_declaration",
        "destructor_declaration",
    ):
        return "method"
    name = name_node(node, spec)
    if name is not None and name.type == "qualified_identifier":
        return "method"  # C++ Box::get() defined out of line
    for ancestor in _chain(node.parent):
        if ancestor.type in spec.classes:
            return "method"
        if ancestor.type in spec.functions:
            return "function"
    return "function"


def outer_node(node: "tree_sitter.Node", spec: LanguageSpec) -> "tree_sitter.Node":
    """`node` with the wrappers around it (decorators, `export`, `const f =`)."""
    outer = node
    while outer.parent is not None and outer.parent.type in spec.wrappers:
        outer = outer.parent
    return outer


def definition_nodes(doc: "Document", offset: int) -> list["tree_sitter.Node"]:
    """Definitions whose range contains `offset` (ends inclusive), innermost first."""
    tree, spec = tree_and_spec(doc)
    if tree is None or spec is None:
        return []
    byte = doc.byte_offset_of(offset)
    found: dict[int, "tree_sitter.Node"] = {}
    for node in _nodes_touching(tree, byte):
        if node.type in spec.wrappers:  # `const f = () => {}`: the name is outside the arrow
            node = definition_in(node, spec) or node
        if (
            _is_definition(node, spec)
            and outer_node(node, spec).start_byte <= byte <= node.end_byte
        ):
            found.setdefault(node.id, node)
    return sorted(found.values(), key=lambda n: n.end_byte - n.start_byte)


# ---- Definition construction --------------------------------------------------------------
def _python_docstring(body: "tree_sitter.Node | None") -> "tree_sitter.Node | None":
    if body is None or body.named_child_count == 0:
        return None
    first = body.named_children[0]
    if (
        first.type == "expression_statement"
        and first.named_child_count == 1
        and first.named_children[0].type in ("string", "concatenated_string")
    ):
        return first
    return None


def _strip_python_string(literal: str) -> str:
    body = literal.lstrip("rRbBuUfF")
    for quote in ('"""', "'''", '"', "'"):
        if body.startswith(quote) and body.endswith(quote) and len(body) >= 2 * len(quote):
            return textwrap.dedent(body[len(quote) : -len(quote)]).strip()
    return body.strip()


def _leading_doc_comment(
    doc: "Document", def_line: int, style: str, language_grammar: str
) -> tuple[str, int, int] | None:
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
        start = doc.line_start(line) + len(leading_ws(doc.line_text(line)))
        raw = doc.text[start : doc.line_end(last)]
        inner = raw[3:-2] if raw.endswith("*/") else raw[3:]
        text = "\n".join(ln.strip().lstrip("*").strip() for ln in inner.splitlines()).strip()
        return text, start, doc.line_end(last)
    prefix = {DOC_TRIPLE_SLASH: "///", DOC_DOUBLE_SLASH: "//", DOC_HASH: "#"}.get(style)
    if prefix is None:
        return None
    while (
        language_grammar == "rust" and line >= 0 and doc.line_text(line).lstrip().startswith("#[")
    ):
        line -= 1  # attributes between the doc comment and the fn
    last = line
    while (
        line >= 0
        and doc.line_text(line).lstrip().startswith(prefix)
        and not doc.line_text(line).lstrip().startswith("#!")
    ):
        line -= 1
    first = line + 1
    if first > last:
        return None
    start = doc.line_start(first) + len(leading_ws(doc.line_text(first)))
    lines = [doc.line_text(n).lstrip()[len(prefix) :] for n in range(first, last + 1)]
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


def body_node(node: "tree_sitter.Node") -> "tree_sitter.Node | None":
    """The body of a definition (None for a Go type declaration: its fields are no body)."""
    body = node.child_by_field_name("body")
    if body is None and node.type == "type_declaration":
        return None
    return body


def _signature(
    doc: "Document", node: "tree_sitter.Node", spec: LanguageSpec, body: "tree_sitter.Node | None"
) -> tuple[str, int]:
    """(signature, its end as a str offset) of a definition: from the definition (or its
    `const f =` statement) to the last non-comment child before the body."""
    outer = outer_node(node, spec)
    sig_start_byte = outer.start_byte if node.type in spec.anonymous_functions else node.start_byte
    header_end_byte = _header_end_byte(node, body)
    if header_end_byte <= sig_start_byte:
        header_end_byte = node.end_byte
    sig_start = doc.offset_of_byte(sig_start_byte)
    sig_end = doc.offset_of_byte(header_end_byte)
    return doc.text[sig_start:sig_end].strip(), sig_end


def _make_definition(
    doc: "Document", node: "tree_sitter.Node", spec: LanguageSpec, indent_unit: str | None = None
) -> Definition:
    outer = outer_node(node, spec)
    start, end = doc.offset_of_byte(outer.start_byte), doc.offset_of_byte(node.end_byte)
    named = name_node(node, spec)
    if named is not None:
        name = _node_text(doc, named)
        name_start = doc.offset_of_byte(named.start_byte)
        name_end = doc.offset_of_byte(named.end_byte)
    else:
        name, name_start, name_end = "", start, start
    start_line, end_line = doc.line_of(start), doc.line_of(end)
    def_indent = leading_ws(doc.line_text(start_line))
    body = body_node(node)

    signature, sig_end = _signature(doc, node, spec, body)

    body_indent, body_line = None, None
    if body is not None:
        header_row = doc.line_of(sig_end)
        for child in body.named_children:
            child_line = doc.line_of(doc.offset_of_byte(child.start_byte))
            if child_line > header_row:
                body_line = child_line
                body_indent = leading_ws(doc.line_text(child_line))
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
            if not doc.text[doc.line_start(ds_line) : ds].strip():
                cut_start = doc.line_start(ds_line)
            de_line = doc.line_of(de)
            if not doc.text[de : doc.line_end(de_line)].strip() and de_line + 1 < doc.line_count:
                cut_end = doc.line_start(de_line + 1)
            if cut_start >= line_start and cut_end <= end:
                without = doc.text[line_start:cut_start] + doc.text[cut_end:end]
    else:
        found = _leading_doc_comment(doc, start_line, spec.doc_style, spec.grammar)
        if found is not None:
            docstring, ds, de = found
            doc_range = (ds, de)
    without = textwrap.dedent(without.replace("\r\n", "\n").replace("\r", "\n"))
    body_hash = hashlib.sha256(
        _normalise_for_hash(without).encode("utf-8", "surrogatepass")
    ).hexdigest()
    return Definition(
        kind=_kind(node, spec),
        name=name,
        language_id=doc.language_id,
        start=start,
        end=end,
        start_byte=outer.start_byte,
        end_byte=node.end_byte,
        name_start=name_start,
        name_end=name_end,
        start_line=start_line,
        end_line=end_line,
        signature_line=doc.line_of(doc.offset_of_byte(node.start_byte)),
        source=source,
        source_without_docstring=without,
        signature=signature,
        body_hash=body_hash,
        def_indent=def_indent,
        body_indent=body_indent,
        body_line=body_line,
        docstring=docstring,
        docstring_range=doc_range,
    )


# ---- public queries ---------------------------------------------------------------------------
def _enclosing_nodes(doc: "Document", offset: int) -> list["tree_sitter.Node"]:
    """Definition nodes around `offset`, innermost first (see enclosing_definitions)."""
    nodes = definition_nodes(doc, offset)
    spec = spec_for(doc.language_id)
    if spec is None or spec.grammar != "python":
        return nodes
    line = doc.line_of(offset)
    before = doc.text[doc.line_start(line) : offset]
    if before.strip():
        return nodes
    # cursor in the leading whitespace of a line: a Python body deeper than the cursor's
    # column may continue here
    width = _width(before)
    previous = _previous_code_line(doc, line)
    if previous is None:
        return nodes
    known = {n.id for n in nodes}
    for node in definition_nodes(doc, doc.line_end(previous)):
        def_line = doc.line_text(doc.line_of(doc.offset_of_byte(node.start_byte)))
        if node.id not in known and _width(leading_ws(def_line)) < width:
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
    found = definition_nodes(doc, offset)
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
    for node in definition_nodes(doc, offset):
        if node.type in spec.functions:
            return _make_definition(doc, node, spec)
    return None


def neighbour_functions(
    doc: "Document", definition: Definition, reach: int = 60
) -> list[Definition]:
    """The functions just above and below `definition` (for background summaries); none while
    the tree is out of date: background work must not start a (possibly long) parse on the
    event loop, and after an edit `definition`'s lines may be stale anyway."""
    if not doc.tree_is_current:
        return []
    found = []
    for lines in (
        range(definition.start_line - 1, max(-1, definition.start_line - 1 - reach), -1),
        range(definition.end_line + 1, min(doc.line_count, definition.end_line + 1 + reach)),
    ):
        for line in lines:
            text = doc.line_text(line)
            if not text.strip():
                continue
            other = definition_at(doc, (line, len(text) - len(text.lstrip())))
            if (
                other is not None
                and other.kind in ("function", "method")
                and other.body_hash != definition.body_hash
            ):
                found.append(other)
                break
    return found


def _is_import(node: "tree_sitter.Node", spec: LanguageSpec, doc: "Document") -> bool:
    if node.type in spec.imports:
        return True
    if (
        node.type == "expression_statement"
        and node.named_child_count
        and node.named_children[0].type in spec.imports
    ):
        return True
    if not spec.import_calls:
        return False
    if node.type == "call":  # Ruby: require 'json'
        method = node.child_by_field_name("method")
        return (
            node.child_by_field_name("receiver") is None
            and method is not None
            and _node_text(doc, method) in spec.import_calls
        )
    if node.type in ("lexical_declaration", "variable_declaration", "expression_statement"):
        head = doc.source_bytes[node.start_byte : min(node.end_byte, node.start_byte + 300)]
        return any(f"{name}(".encode() in head.replace(b" (", b"(") for name in spec.import_calls)
    return False


def import_nodes(doc: "Document") -> list[tuple[int, str]]:
    """(str offset, text) of the file's import statements (top level and namespaces).

    The scan stops 40 statements after the last import; the result is kept across edits
    made after the point where the scan stopped (typing in a function body far below the
    imports does not rescan them).
    """
    cached = doc.context_cache.imports
    if cached is not None:
        mark, scan_end, found = cached
        changed = doc.first_edit_offset_since(mark)
        if changed is None or changed > scan_end:
            return found
    tree, spec = tree_and_spec(doc)
    found = []
    scan_end = len(doc.text)
    if tree is not None and spec is not None:
        stopped = _collect_imports(doc, tree.root_node, spec, found, 0)
        if stopped is not None:
            scan_end = doc.offset_of_byte(stopped)
    doc.context_cache.imports = (doc.edit_count, scan_end, found)
    return found


def _collect_imports(
    doc: "Document",
    parent: "tree_sitter.Node",
    spec: LanguageSpec,
    found: list[tuple[int, str]],
    depth: int,
) -> int | None:
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


# ---- the items around a position ---------------------------------------------------------------
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
        child = root.named_child(mid)
        assert child is not None  # 0 <= mid < count
        if child.end_byte > byte:
            hi = mid
        else:
            lo = mid + 1
    return root.named_child(min(lo, count - 1))


def items_around(
    anchor: "tree_sitter.Node", scan_bytes: int, anchor_bytes: int
) -> list["tree_sitter.Node"]:
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


def definition_in(node: "tree_sitter.Node", spec: LanguageSpec) -> "tree_sitter.Node | None":
    """`node` if it is a definition, or the definition it wraps (decorators, export, ...)."""
    for _ in range(4):
        if _is_definition(node, spec):
            return node
        if node.type not in spec.wrappers or node.named_child_count == 0:
            return None
        inner = (
            node.child_by_field_name("definition")
            or node.child_by_field_name("declaration")
            or node.child_by_field_name("value")
            or node.named_children[-1]
        )
        node = inner
    return None


def functions_in(
    node: "tree_sitter.Node", spec: LanguageSpec, depth: int = 2
) -> Iterable["tree_sitter.Node"]:
    """Function definitions at `node`: itself, or the methods of a class (one level)."""
    definition = definition_in(node, spec)
    if definition is None:
        return
    if definition.type in spec.functions:
        yield definition
    elif definition.type in spec.classes and depth > 0:
        body = body_node(definition)
        for child in body.named_children if body is not None else ():
            yield from functions_in(child, spec, depth - 1)


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
    tree, spec = tree_and_spec(doc)
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
                at_end_of_line_comment = byte == node.end_byte and not doc.source_bytes[
                    node.start_byte : node.end_byte
                ].rstrip().endswith(b"*/")
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
    suffix = doc.text[offset : doc.line_end(line)]
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
        opener_width = _width(leading_ws(doc.line_text(opener)))
        following = _next_code_line(doc, line)
        if following is None or _width(leading_ws(doc.line_text(following))) <= opener_width:
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
        stack.extend(
            child for child in node.children if child.end_byte >= start and child.start_byte <= end
        )
    return False


def detect_indent_unit(doc: "Document", around_line: int = 0) -> str:
    """The document's indent unit ("\\t" or N spaces), from up to 200 lines around
    `around_line` (most common indentation step); reused for the next 200 edits."""
    block = around_line // _INDENT_SAMPLE_LINES
    cached = doc.context_cache.indent_units.get(block)
    if cached is not None and doc.edit_count - cached[0] < 200:
        return cached[1]
    first = max(0, around_line - _INDENT_SAMPLE_LINES // 2)
    last = min(doc.line_count - 1, around_line + _INDENT_SAMPLE_LINES // 2)
    sample = doc.text[doc.line_start(first) : doc.line_end(last)].splitlines()
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
    doc.context_cache.indent_units[block] = (doc.edit_count, unit)
    return unit


# ---- identifiers ----------------------------------------------------------------------------
NAME_BYTES = rb"A-Za-z0-9_\x80-\xff"  # the bytes of a name (a regex class body; non-ASCII: letters)
IDENTIFIER = re.compile(rb"[A-Za-z_\x80-\xff][" + NAME_BYTES + rb"]*")
# Keywords shared by many of our languages: they match everywhere and would only add noise.
COMMON_KEYWORDS = frozenset(
    b"and as async await break case catch class const continue def default del do elif else "
    b"enum except export extends false final finally fn for from func function go if impl "
    b"import in interface is let match mut new nil none not null or package pass private "
    b"protected pub public raise return self static struct super switch this throw true try "
    b"type use var void while with yield".split()
)


def identifiers(source: bytes | bytearray | str) -> frozenset[bytes]:
    """Identifier-like words of `source` (UTF-8), without one-letter names and common
    keywords. Bytes, because the scan works on the document's bytes (no offset mapping)."""
    if isinstance(source, str):
        source = source.encode("utf-8", "surrogatepass")
    return frozenset(
        w
        for w in set(IDENTIFIER.findall(source))
        if len(w) > 1 and w.lower() not in COMMON_KEYWORDS
    )
