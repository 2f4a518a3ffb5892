"""Context step: definitions, hover targets, imports, cursor kinds and token budgets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from lsprotocol import types

from codet5_lsp.server.context import (
    build_completion_context,
    jaccard,
    last_n_tokens_context,
    most_similar_function,
    nearby_functions,
    similar_function_context,
)
from codet5_lsp.server.documents import DocumentStore
from codet5_lsp.server.syntax import (
    BLOCK_START,
    IN_COMMENT,
    IN_STRING,
    LINE_START,
    MID_LINE,
    cursor_kind,
    definition_at,
    detect_indent_unit,
    enclosing_definition,
    identifiers,
    imports,
)
from tests.support.sources import WORD_AT_CURSOR_SOURCE


@dataclass(frozen=True)
class Fixture:
    language_id: str
    source: str
    body_needle: str  # text inside the function body
    name: str  # the function's name
    kind: str  # function | method
    imports: tuple[str, ...]
    outside_needle: str  # a top-level position that is in no function
    docstring: str | None = None


FIXTURES = [
    Fixture(
        "python",
        '''import os
from typing import List


class Greeter:
    """A greeter."""

    @staticmethod
    def greet(name):
        """Say hi."""
        return "hi " + name


x = 1
''',
        'return "hi',
        "greet",
        "method",
        ("import os", "from typing import List"),
        "x = 1",
        "Say hi.",
    ),
    Fixture(
        "java",
        """package demo;
import java.util.List;

public class Greeter {
    /**
     * Says hello.
     */
    public String greet(String name) {
        return "hi " + name;
    }
}
""",
        'return "hi',
        "greet",
        "method",
        ("import java.util.List;",),
        "package demo",
        "Says hello.",
    ),
    Fixture(
        "javascript",
        """import fs from 'fs';
const path = require('path');

/** Adds. */
function add(a, b) {
  return a + b;
}
const el = <div>{add(1, 2)}</div>;
""",
        "return a + b",
        "add",
        "function",
        ("import fs from 'fs';", "const path = require('path');"),
        "const el",
        "Adds.",
    ),
    Fixture(
        "typescript",
        """import { x } from "./x";

export function add(a: number, b: number): number {
  return a + b;
}
let y: number = 2;
""",
        "return a + b",
        "add",
        "function",
        ('import { x } from "./x";',),
        "let y",
    ),
    Fixture(
        "typescriptreact",
        """import React from "react";

const App = (props: { name: string }) => {
  return <div>{props.name}</div>;
};
export default App;
""",
        "return <div>",
        "App",
        "function",
        ('import React from "react";',),
        "export default",
    ),
    Fixture(
        "go",
        """package main

import (
\t"fmt"
)

// Add adds.
func Add(a int, b int) int {
\treturn a + b
}

var x = 1
""",
        "return a + b",
        "Add",
        "function",
        ('import (\n\t"fmt"\n)',),
        "var x",
        "Add adds.",
    ),
    Fixture(
        "ruby",
        """require 'json'

class Box
  # Size of it.
  def size(a)
    a + 1
  end
end
puts 1
""",
        "a + 1",
        "size",
        "method",
        ("require 'json'",),
        "puts 1",
        "Size of it.",
    ),
    Fixture(
        "php",
        """<?php
use Foo\\Bar;

/** Adds. */
function add($a, $b) {
    return $a + $b;
}
echo 1;
""",
        "return $a",
        "add",
        "function",
        ("use Foo\\Bar;",),
        "echo 1",
        "Adds.",
    ),
    Fixture(
        "c",
        """#include <stdio.h>

/** Adds. */
int add(int a, int b) {
    return a + b;
}
int x = 1;
""",
        "return a + b",
        "add",
        "function",
        ("#include <stdio.h>",),
        "int x",
        "Adds.",
    ),
    Fixture(
        "cpp",
        """#include <vector>

class Box {
public:
    int size() const {
        return 1;
    }
};
int x = 1;
""",
        "return 1",
        "size",
        "method",
        ("#include <vector>",),
        "int x",
    ),
    Fixture(
        "csharp",
        """using System;

namespace Demo {
    class Box {
        /// Size of it.
        public int Size(int a) {
            return a + 1;
        }
    }
}
""",
        "return a + 1",
        "Size",
        "method",
        ("using System;",),
        "using System",
        "Size of it.",
    ),
    Fixture(
        "rust",
        """use std::io;

/// Adds.
fn add(a: i32, b: i32) -> i32 {
    a + b
}

struct S;
""",
        "a + b\n",
        "add",
        "function",
        ("use std::io;",),
        "struct S",
        "Adds.",
    ),
]


def _open(source: str, language_id: str, uri: str = "file:///tmp/x"):
    store = DocumentStore()
    return store, store.open(uri, source, language_id, 1)


def _insert(store, doc, offset: int, text: str) -> None:
    pos = doc.position_at(offset)
    store.change(
        doc.uri,
        doc.version + 1,
        [types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text=text)],
    )


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.language_id)
def test_enclosing_definition_and_hover_per_language(fx: Fixture):
    _, doc = _open(fx.source, fx.language_id)
    assert doc.tree is not None and not doc.tree.root_node.has_error
    inside = fx.source.index(fx.body_needle) + 2
    definition = enclosing_definition(doc, inside)
    assert definition is not None
    assert (definition.name, definition.kind) == (fx.name, fx.kind)
    assert doc.text[definition.name_start : definition.name_end] == fx.name
    assert definition.source == doc.text[definition.start : definition.end]
    assert fx.name in definition.signature and fx.body_needle.strip() not in definition.signature
    assert definition.docstring == fx.docstring
    # hover: on the body and on the name -> the function; top-level code -> None
    assert definition_at(doc, doc.position_at(inside)).name == fx.name
    assert definition_at(doc, doc.position_at(definition.name_start + 1)).name == fx.name
    outside = fx.source.index(fx.outside_needle) + 1
    assert definition_at(doc, doc.position_at(outside)) is None
    assert (
        enclosing_definition(doc, outside) is None
        or enclosing_definition(doc, outside).kind == "class"
    )


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.language_id)
def test_imports_per_language(fx: Fixture):
    _, doc = _open(fx.source, fx.language_id)
    assert imports(doc) == list(fx.imports)


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.language_id)
def test_body_hash_stable_outside_and_changes_inside(fx: Fixture):
    store, doc = _open(fx.source, fx.language_id)
    first = enclosing_definition(doc, fx.source.index(fx.body_needle) + 2)
    # an edit after the function, then one before it (shifts every offset)
    _insert(store, doc, len(doc.text), "\n\n")
    _insert(store, doc, doc.text.index(fx.imports[0]) + len(fx.imports[0]), "\n\n\n")
    moved = enclosing_definition(doc, doc.text.index(fx.body_needle) + 2)
    assert moved is not None and moved.name == fx.name
    assert moved.body_hash == first.body_hash
    assert moved.start > first.start
    # an edit inside the body changes it
    _insert(store, doc, doc.text.index(fx.body_needle) + 1, "1")
    changed = enclosing_definition(doc, doc.text.index(fx.body_needle[:1] + "1"))
    assert changed is not None and changed.name == fx.name
    assert changed.body_hash != first.body_hash


def test_python_docstring_is_left_out_of_the_hash_and_source():
    src = 'def f(a):\n    """Doc."""\n    return a\n'
    _, doc = _open(src, "python")
    with_doc = enclosing_definition(doc, src.index("return"))
    _, doc2 = _open('def f(a):\n    """Other words."""\n    return a\n', "python")
    other_doc = enclosing_definition(doc2, doc2.text.index("return"))
    _, doc3 = _open("class K:\n    def f(a):\n        return a\n", "python")
    nested = enclosing_definition(doc3, doc3.text.index("return"))
    assert with_doc.source_without_docstring == "def f(a):\n    return a"
    assert with_doc.docstring == "Doc." and with_doc.docstring_range == (14, 24)
    assert with_doc.body_hash == other_doc.body_hash == nested.body_hash
    assert (with_doc.body_line, with_doc.body_indent, with_doc.def_indent) == (1, "    ", "")
    assert nested.kind == "method" and nested.def_indent == "    "
    _, decorated = _open("@cache\ndef g(): return 1\n", "python")
    g = enclosing_definition(decorated, decorated.text.index("return"))
    assert (g.start_line, g.signature_line, g.body_line, g.signature) == (0, 1, None, "def g():")


def test_hover_on_blank_lines_between_functions_and_decorators():
    src = "import os\n\ndef a():\n    return 1\n\n\ndef b():\n    pass\n"
    _, doc = _open(src, "python")
    blank = types.Position(line=4, character=0)
    assert definition_at(doc, blank) is None
    assert definition_at(doc, types.Position(line=0, character=3)) is None  # import
    assert definition_at(doc, types.Position(line=2, character=4)).name == "a"  # the name
    assert definition_at(doc, types.Position(line=2, character=0)).name == "a"  # `def`
    assert definition_at(doc, types.Position(line=7, character=6)).name == "b"


def test_enclosing_definition_on_a_new_indented_line_after_the_body():
    src = "class A:\n    def f(self):\n        x = 1\n        \n\ny = 2\n"
    _, doc = _open(src, "python")
    at_new_line = doc.offset_at(types.Position(line=3, character=8))
    assert enclosing_definition(doc, at_new_line).name == "f"
    at_class_level = doc.offset_at(types.Position(line=3, character=4))
    assert enclosing_definition(doc, at_class_level).name == "A"
    assert enclosing_definition(doc, doc.offset_at(types.Position(line=5, character=0))) is None


def test_imports_follow_edits_above_and_survive_edits_below():
    store, doc = _open("import os\n\ndef f():\n    pass\n", "python")
    assert imports(doc) == ["import os"]
    _insert(store, doc, 0, "import sys\n")
    assert imports(doc) == ["import sys", "import os"]
    _insert(store, doc, len(doc.text), "import json\n")
    assert imports(doc) == ["import sys", "import os", "import json"]
    many = "".join(f"x{i} = {i}\n" for i in range(60))  # the scan gives up after 40
    store, doc = _open("import os\n" + many + "import late\n", "python")
    assert imports(doc) == ["import os"]
    _insert(store, doc, len(doc.text), "z = 1\n")  # below where the scan stopped: reused
    assert imports(doc) == ["import os"]


def test_hover_returns_the_innermost_function():
    src = "def outer():\n    def inner():\n        return 1\n    return inner\n"
    _, doc = _open(src, "python")
    assert definition_at(doc, types.Position(line=2, character=9)).name == "inner"
    assert definition_at(doc, types.Position(line=3, character=5)).name == "outer"


@pytest.mark.parametrize(
    "language_id,source,expected",
    [
        ("python", "def f():\n    §", BLOCK_START),
        ("python", "def f():\n    §\n\ndef g():\n    pass\n", BLOCK_START),
        ("python", "if x:  # why\n    §", BLOCK_START),
        ("python", "def f():\n    §\n    return 1\n", LINE_START),  # body not empty
        ("python", "x = 1\n§", LINE_START),
        ("python", "x = foo(§)", MID_LINE),
        ("python", "x = 'ab§c'", IN_STRING),
        ("python", "x = 1  # note§", IN_COMMENT),
        ("python", 'def f():\n    """Doc\n    §\n    """\n', IN_STRING),
        ("python", "x = f'{ab§}'", MID_LINE),  # code inside an f-string
        ("javascript", "function f() {\n  §\n}\n", BLOCK_START),
        ("javascript", "items.forEach((x) => {\n  §\n});\n", BLOCK_START),
        ("javascript", "const s = `a ${b§} c`;", MID_LINE),
        ("javascript", "const s = `a §`;", IN_STRING),
        ("javascript", "/* a § b */", IN_COMMENT),
        ("go", "func f() {\n\t§\n}\n", BLOCK_START),
        ("rust", "fn f() {\n    §\n}\n", BLOCK_START),
        ("ruby", "def f\n  §\nend\n", BLOCK_START),
        ("ruby", "[1].each do |x|\n  §\nend\n", BLOCK_START),
        ("java", "class A {\n    void f() {\n        §\n    }\n}\n", BLOCK_START),
        ("c", "int f(void) {\n    int x = §\n}\n", MID_LINE),
        ("plaintext", "hello §", MID_LINE),
        ("python", "s = 'unterminated §", IN_STRING),
    ],
)
def test_cursor_kind(language_id, source, expected):
    offset = source.index("§")
    _, doc = _open(source.replace("§", "", 1), language_id)
    assert cursor_kind(doc, offset) == expected


def test_indent_unit_detection():
    assert detect_indent_unit(_open("if x:\n  y = 1\n  if z:\n    w\n", "python")[1]) == "  "
    assert detect_indent_unit(_open("func f() {\n\tx := 1\n}\n", "go")[1]) == "\t"
    assert detect_indent_unit(_open("class A:\n    pass\n", "python")[1]) == "    "
    assert detect_indent_unit(_open("x\n", "ruby")[1]) == "  "


def _count_words(text: str) -> int:
    """A stand-in tokenizer: whitespace-separated words (monotone, like a real one)."""
    return len(text.split())


def test_build_context_small_file_is_whole():
    src = "import os\n\ndef f(a):\n    return a\n"
    _, doc = _open(src, "python")
    ctx = build_completion_context(
        doc, types.Position(line=3, character=12), _count_words, 100, 100
    )
    assert ctx.prefix == "import os\n\ndef f(a):\n    return a"
    assert ctx.suffix == "\n"
    assert ctx.line_prefix == "    return a" and ctx.line_suffix == ""
    assert not ctx.multiline and not ctx.prefix_truncated
    assert ctx.cursor_kind == LINE_START or ctx.cursor_kind == MID_LINE


FILLER = "".join(f"    x_{i} = {i}\n" for i in range(200))
SIMILAR_SRC = (
    "import json\nimport os\n\n\n"
    "def render(template, values):\n    return template.format(**values)\n\n\n"
    "def load_config(path):\n    with open(path) as handle:\n"
    "        return json.load(handle)\n\n\n"
    "def filler():\n" + FILLER + "    return x_199\n\n\n"
    "def load_settings(path):\n    if not os.path.exists(path):\n        return {}\n"
    "    with open(path) as handle:\n        return json.lo"
)


def test_previous_selection_keeps_the_window_and_adds_imports_and_a_similar_function():
    _, doc = _open(SIMILAR_SRC + "\n", "python")
    end = types.Position(line=SIMILAR_SRC.count("\n"), character=len("        return json.lo"))
    ctx = similar_function_context(doc, end, _count_words, 60, 10)
    assert ctx.prefix_truncated and _count_words(ctx.prefix) <= 60
    head = (
        "import json\nimport os\n\n"
        "def load_config(path):\n    with open(path) as handle:\n"
        "        return json.load(handle)\n\n"
    )
    assert ctx.prefix.startswith(head)  # imports, then the function most like the cursor's
    window = ctx.prefix[len(head) :]
    assert SIMILAR_SRC.endswith(window) and window.startswith("    x_")  # whole lines
    assert "render" not in ctx.prefix
    baseline = last_n_tokens_context(doc, end, _count_words, 60, 10)
    assert SIMILAR_SRC.endswith(baseline.prefix) and "import" not in baseline.prefix
    assert _count_words(baseline.prefix) <= 60 and baseline.suffix == ctx.suffix


def test_the_similar_function_may_come_from_below_the_cursor_and_is_cut_to_its_share():
    body = "".join(f"        total_{i} = price * count + {i}\n" for i in range(40))
    src = (
        "def a():\n" + FILLER + "\n\ndef checkout(cart):\n    price = cart.price\n"
        "    count = cart.count\n    return price * \n\n\n"
        "def invoice(cart):\n    price = cart.price\n    count = cart.count\n" + body
    )
    _, doc = _open(src, "python")
    line = src.splitlines().index("    return price * ")
    ctx = similar_function_context(
        doc, types.Position(line=line, character=19), _count_words, 90, 0
    )
    assert ctx.prefix.startswith("def invoice(cart):\n    price = cart.price\n")
    similar = ctx.prefix[: ctx.prefix.index("\n\n") + 1]
    assert _count_words(similar) <= 90 // 3 and src.index(similar) > 0  # its first lines
    assert ctx.prefix.endswith("    return price * ")


def test_no_similar_function_when_no_word_is_shared():
    src = "def render(template):\n    return template\n\n\ndef f():\n" + FILLER + "    retu"
    _, doc = _open(src, "python")
    offset = len(src)
    assert most_similar_function(doc, offset, offset - 40) is None
    assert most_similar_function(doc, offset, 0) is None  # everything is in the window


@pytest.mark.parametrize(
    "text,expected",
    [
        ("self.value = compute(x)", {"value", "compute"}),  # keywords, one-letter names dropped
        ("const total = items.map(item => item.price)", {"total", "items", "map", "item", "price"}),
        ("fn main() { let mut v = Vec::new(); }", {"main", "Vec"}),
        ("名前 = données_ü + count", {"名前", "données_ü", "count"}),  # non-ASCII letters too
        ("", set()),
    ],
)
def test_identifiers(text, expected):
    assert identifiers(text) == {w.encode() for w in expected}
    assert identifiers(text.encode()) == identifiers(text)


def test_jaccard():
    assert jaccard(frozenset({"a", "b"}), frozenset({"b", "c"})) == 1 / 3
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_nearby_functions_include_methods_and_stop_at_the_scan_limit():
    src = (
        "class Box:\n    def get(self):\n        return 1\n\n    def put(self, v):\n"
        "        pass\n\n\ndef free():\n    return 2\n"
    )
    _, doc = _open(src, "python")
    spans = nearby_functions(doc, len(src) - 1)
    assert [src[s:e].split("(")[0] for s, e in spans] == ["def get", "def put", "def free"]
    far = "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(400))
    _, big = _open(far, "python")
    near = nearby_functions(big, len(far) // 2, scan_bytes=500)
    assert 10 <= len(near) <= 40  # a window of functions around the cursor, not the file
    names = [far[s:e].split("(")[0] for s, e in near]
    assert "def f200" in names and "def f0" not in names


def test_build_context_multiline_and_flags():
    src = "def f(x):\n    \n"
    _, doc = _open(src, "python")
    ctx = build_completion_context(doc, types.Position(line=1, character=4), _count_words, 50, 50)
    assert ctx.multiline and ctx.cursor_kind == BLOCK_START and ctx.line_prefix == "    "
    mid = build_completion_context(doc, types.Position(line=0, character=6), _count_words, 50, 50)
    assert not mid.multiline and mid.mid_line
    _, sdoc = _open("s = 'abc'\n", "python")
    in_string = build_completion_context(
        sdoc, types.Position(line=0, character=6), _count_words, 50, 50
    )
    assert in_string.in_string_or_comment


def test_build_context_single_huge_line_is_cut_inside_it():
    src = "x = [" + ", ".join(str(i) for i in range(3000)) + "]"
    _, doc = _open(src, "python")
    ctx = build_completion_context(
        doc, types.Position(line=0, character=len(src) - 1), _count_words, 40, 0
    )
    assert 0 < _count_words(ctx.prefix) <= 40 and src[:-1].endswith(ctx.prefix)
    assert ctx.suffix == ""


def test_context_for_unknown_language_and_too_large_files():
    _, doc = _open("hello world\nfoo", "plaintext")
    ctx = build_completion_context(doc, types.Position(line=1, character=3), _count_words, 10, 10)
    assert ctx.prefix == "hello world\nfoo" and ctx.language_id == "plaintext"
    assert enclosing_definition(doc, 3) is None and imports(doc) == []


# ---- token counts remembered across keystrokes ---------------------------------------------
def test_remembered_counts_call_the_tokenizer_once_per_text_and_per_tokenizer():
    from codet5_lsp.server.context import _remembered_counts

    class Tokenizer:
        def __init__(self):
            self.calls = []

        def count(self, text):
            self.calls.append(text)
            return len(text.split())

    doc = DocumentStore().open("file:///c.py", "x = 1\n", "python", 1)
    first = Tokenizer()
    assert _remembered_counts(doc, first.count)("import os\nimport re\n") == 4
    assert _remembered_counts(doc, first.count)("import os\nimport re\n") == 4
    assert first.calls == ["import os\nimport re\n"]
    second = Tokenizer()  # another model's tokenizer: its own counts
    assert _remembered_counts(doc, second.count)("import os\nimport re\n") == 4
    assert second.calls == ["import os\nimport re\n"]


async def test_only_infill_fits_a_suffix(labmodel_int8, monkeypatch):
    """The decoder prompt never shows the text after the cursor, so the pipeline does not pay
    for fitting it; infill does get it."""
    from codet5_lsp.server import pipeline as pipeline_module
    from codet5_lsp.server.model_manager import ModelManager
    from codet5_lsp.server.settings import Settings

    budgets = []
    real = pipeline_module.build_completion_context

    def spy(doc, position, count, prefix_tokens, suffix_tokens, *others):
        budgets.append(suffix_tokens)
        return real(doc, position, count, prefix_tokens, suffix_tokens, *others)

    monkeypatch.setattr(pipeline_module, "build_completion_context", spy)
    source = "def area(w, h):\n    return w * h\n\n\ndef volume(w, h, d):\n    return \n"
    for mode in ("decoder", "infill"):
        settings = Settings(
            model=str(labmodel_int8.folder),
            device="cpu",
            compute_type="int8",
            completion_mode=mode,
            request_timeout_ms=120000,
        )
        models = ModelManager(settings)
        models.wait_ready()
        try:
            doc = DocumentStore().open("file:///s.py", source, "python", 1)
            pipeline = pipeline_module.CompletionPipeline(models, settings)
            await pipeline.complete(doc, types.Position(line=5, character=11), debounce=False)
        finally:
            models.close()
    assert budgets == [0, Settings().max_suffix_tokens]


# ---- served selection: lines that carry the names the next line needs ----------------------
STORE_SRC = (
    '''import json


class Store:
    """Keeps items."""

    def __init__(self, capacity, loader):
        self.limit = capacity
        self.loader = loader
        self.items = {}

    def lookup(self, key, default=None):
        return self.items.get(key, default)

    def refill(self):
        while len(self.items) < self.limit:
            self.items.update(self.loader())

    def report(self):
'''
    + "".join(f"        total_{i} = {i}\n" for i in range(150))
    + """        return total_149

    def evict(self, key):
        if len(self.items) > """
)


def _end_of(src: str) -> types.Position:
    lines = src.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


def test_served_context_brings_attributes_and_signatures_from_outside_the_window():
    _, doc = _open(STORE_SRC, "python")
    ctx = build_completion_context(doc, _end_of(STORE_SRC), _count_words, 240, 0)
    baseline = last_n_tokens_context(doc, _end_of(STORE_SRC), _count_words, 240, 0)
    assert ctx.prefix_truncated and _count_words(ctx.prefix) <= 240
    assert "".join(text for _, text in ctx.prefix_parts) == ctx.prefix
    kind, window = ctx.prefix_parts[-1]
    assert kind == "cursor_window" and STORE_SRC.endswith(window)
    assert window.startswith("        total_")  # the nearest whole lines
    head = ctx.prefix[: -len(window)]
    # the names the line may need, far above the window: the attribute and its method
    assert "limit" not in baseline.prefix
    assert "    def __init__(self, capacity, loader):\n        self.limit = capacity\n" in head
    assert "\nclass Store:\n    def __init__" in head  # a method comes with its class header
    for line in head.splitlines():  # real lines of the file (Python stubs end in " ...")
        assert not line or line.removesuffix(" ...") in STORE_SRC.splitlines()


@pytest.mark.parametrize("budget", [20, 45, 90, 200])
def test_served_context_stays_within_budget_and_ends_with_the_window(budget):
    _, doc = _open(STORE_SRC, "python")
    ctx = build_completion_context(doc, _end_of(STORE_SRC), _count_words, budget, 0)
    assert _count_words(ctx.prefix) <= budget
    assert ctx.prefix_parts and ctx.prefix_parts[-1][0] == "cursor_window"
    assert STORE_SRC.endswith(ctx.prefix_parts[-1][1])
    assert "".join(text for _, text in ctx.prefix_parts) == ctx.prefix


SHAPES_SRC = """class Box:
    def __init__(self, width, height):
        self.width = width
        self.height = height

    def area(self):
        return self.width * self.height

    def scaled(self, factor):
        return Box(self.width * factor, self.height * factor)


def unrelated_helper(values):
    return sorted(values)
"""

MAIN_SRC = (
    """from shapes import Box


def build(count):
    boxes = []
"""
    + "".join(f"    step_{i} = {i}\n" for i in range(120))
    + """    for i in range(count):
        boxes.append(Box(i, i))
    first = boxes[0]
    return first."""
)


def test_cross_file_context_brings_signatures_of_imported_names_from_other_open_documents():
    store, doc = _open(MAIN_SRC, "python")
    shapes = store.open("file:///work/shapes.py", SHAPES_SRC, "python", 1)
    notes = store.open("file:///work/notes.js", "class Box { area() {} }\n", "javascript", 1)
    position = _end_of(MAIN_SRC)
    alone = build_completion_context(doc, position, _count_words, 180, 0)
    ctx = build_completion_context(doc, position, _count_words, 180, 0, [notes, shapes])
    assert "scaled" not in alone.prefix
    parts = dict(ctx.prefix_parts)
    other = parts["other_files"]
    assert other.startswith("# work/shapes.py\nclass Box:\n")  # a comment in Python names it
    assert "    def scaled(self, factor): ..." in other and "    def area(self): ..." in other
    assert "area() {}" not in ctx.prefix  # another language is not shown
    assert _count_words(ctx.prefix) <= 180 and MAIN_SRC.endswith(ctx.prefix_parts[-1][1])
    assert [k for k, _ in ctx.prefix_parts][-1] == "cursor_window"
    # the function around the cursor: its header without " ...", its body is the window
    assert parts["definitions"] == "def build(count):\n\n"


def test_cross_file_candidates_are_the_imported_names_or_the_whole_imported_module():
    from codet5_lsp.server.retrieval import other_document_units

    store, doc = _open("import numbers\nfrom shapes import Box\n", "python")
    shapes = store.open("file:///work/shapes.py", SHAPES_SRC, "python", 1)
    by_name = other_document_units(doc, [b"Box"], [shapes])
    assert [u.text for u in by_name][:2] == ["class Box:", "    def __init__(self, width, height):"]
    assert not any("unrelated_helper" in u.text for u in by_name)
    whole = other_document_units(doc, [b"shapes"], [shapes])  # a module import: everything
    assert any("unrelated_helper" in u.text for u in whole)
    assert other_document_units(doc, [b"numbers"], [shapes]) == []


AFTER_SRC = STORE_SRC + "self.limit:\n            self.items.popitem()\n        return key\n"


def test_lines_after_the_cursor_go_last_in_decoder_mode_only():
    _, doc = _open(AFTER_SRC, "python")
    cursor = _end_of(STORE_SRC)
    ctx = build_completion_context(doc, cursor, _count_words, 240, 0)
    kinds = [k for k, _ in ctx.prefix_parts]
    assert kinds[-2:] == ["after_cursor", "cursor_window"]
    # `popitem` is new; `return key` adds no name the window lacks: not worth its tokens
    assert dict(ctx.prefix_parts)["after_cursor"] == "            self.items.popitem()\n\n"
    infill = build_completion_context(doc, cursor, _count_words, 240, 64)
    assert "after_cursor" not in dict(infill.prefix_parts)  # the suffix shows them already
    assert infill.suffix.startswith("self.limit:\n            self.items.popitem()")


# ---- weights: how likely the rest of the line is to need a name ------------------------------
@pytest.mark.parametrize(
    "counts, following, expected",
    [
        ({b"seen": 3}, [], {b"seen": 3.25}),  # its count around the cursor (+ UNSEEN_WEIGHT)
        ({}, [(1, frozenset({b"next"}))], {b"next": 0.25 * 101}),  # 1 + FOLLOWING_NEED / k
        ({b"name": 1}, [(4, frozenset({b"name"}))], {b"name": 1.25 * 26}),
        # the nearest line after the cursor that uses a name counts, once
        (
            {b"name": 1},
            [(2, frozenset({b"name"})), (1, frozenset({b"name"}))],
            {b"name": 1.25 * 51},
        ),
    ],
)
def test_name_weights(counts, following, expected, monkeypatch):
    from collections import Counter

    from codet5_lsp.server import retrieval as R

    monkeypatch.setattr(R, "UNSEEN_WEIGHT", 0.25)
    monkeypatch.setattr(R, "FOLLOWING_NEED", 100.0)
    assert R.name_weights(Counter(counts), following) == pytest.approx(expected)


@pytest.mark.parametrize(
    "counts, completing, expected",
    [
        # one name completes the word: times 1 + WORD_NEED
        ({b"store": 2}, {b"store"}, {b"store": 2.25 * 10_001}),
        # two do: they share it; a name used nowhere around the cursor starts from UNSEEN_WEIGHT
        ({b"store": 2}, {b"store", b"stop"}, {b"store": 2.25 * 5_001, b"stop": 0.25 * 5_001}),
    ],
)
def test_name_weights_of_the_names_that_complete_the_word(
    counts, completing, expected, monkeypatch
):
    from collections import Counter

    from codet5_lsp.server import retrieval as R

    monkeypatch.setattr(R, "UNSEEN_WEIGHT", 0.25)
    monkeypatch.setattr(R, "WORD_NEED", 10_000.0)
    weights = R.name_weights(Counter(counts), [], frozenset(completing))
    assert weights == pytest.approx(expected)


def test_a_name_the_next_line_uses_outranks_a_frequent_one():
    """Room for one line: the signature that defines the name the next line calls wins over
    the one whose name is used 30 times around the cursor."""
    from collections import Counter

    from codet5_lsp.server import retrieval as R

    frequent = R.Unit(("", 1), "definitions", "def frequent(a):", frozenset({b"frequent"}))
    needed = R.Unit(("", 9), "definitions", "def needed_x(a):", frozenset({b"needed_x"}))
    counts = Counter({b"frequent": 30, b"needed_x": 1})
    next_line = [(1, frozenset({b"needed_x", b"total"}))]
    weights = R.name_weights(counts, next_line)
    assert R.choose_units([frequent, needed], weights, set(), budget_chars=20) == [needed]
    # without the lines after the cursor, the frequent name is worth more
    weights = R.name_weights(counts, [])
    assert R.choose_units([frequent, needed], weights, set(), budget_chars=20) == [frequent]


# ---- the word at the cursor: the names that complete it --------------------------------------
@pytest.mark.parametrize(
    "line_prefix, expected",
    [
        (b"    value = self.sto", b"sto"),
        (b"    value = self.", b""),  # no word begun
        (b"    total = 2x", b"x"),  # leading digits are not part of a name
        (b"    count = 42", b""),
        (b"    name = caf\xc3\xa9_", b"caf\xc3\xa9_"),  # non-ASCII letters belong to the word
        (b"", b""),
        (b"import json\n", b""),  # a line break ends the word
    ],
)
def test_word_fragment(line_prefix, expected):
    from codet5_lsp.server.retrieval import word_fragment

    assert word_fragment(line_prefix) == expected


WORD_SRC = WORD_AT_CURSOR_SOURCE


def test_a_name_that_completes_the_word_at_the_cursor_comes_from_far_above_the_window():
    """`conf` is completed by a local name of another function, 150 lines up: no signature,
    attribute or import holds it, and no window of this budget reaches it."""
    _, doc = _open(WORD_SRC, "python")
    cursor = _end_of(WORD_SRC)
    ctx = build_completion_context(doc, cursor, _count_words, 120, 0)
    baseline = last_n_tokens_context(doc, cursor, _count_words, 120, 0)
    assert "confirmation_token" not in baseline.prefix
    head = dict(ctx.prefix_parts)["definitions"]
    # the nearest use, as the real line with its indentation, under its function's header
    assert "    return confirmation_token\n" in head
    # the window starts inside helper(): its header has no " ...", its body goes on below
    assert head.endswith("def helper():\n\n") and ctx.prefix_parts[-1][1].startswith("    filler")
    assert _count_words(ctx.prefix) <= 120 and WORD_SRC.endswith(ctx.prefix_parts[-1][1])
    # a word the window already completes brings nothing
    src = WORD_SRC.replace("outcome = source.get()", "confirmation_token = source.get()")
    _, doc = _open(src, "python")
    ctx = build_completion_context(doc, _end_of(src), _count_words, 120, 0)
    assert "return confirmation_token" not in "".join(t for k, t in ctx.prefix_parts[:-1])


def test_a_completing_line_below_the_cursor_is_not_repeated_when_the_suffix_shows_it():
    src = WORD_SRC.replace("    confirmation_token = source.read()\n", "").replace(
        "    return confirmation_token\n", "    return None\n"
    )
    use = "def later(stream):\n    configured_stream = stream\n    return 1\n"
    near = src + "\n\n\n" + use
    _, doc = _open(near, "python")
    cursor = _end_of(src)
    ctx = build_completion_context(doc, cursor, _count_words, 120, 0)
    assert "    configured_stream = stream\n" in dict(ctx.prefix_parts)["after_cursor"]
    infill = build_completion_context(doc, cursor, _count_words, 120, 60)
    assert "configured_stream" in infill.suffix  # shown after the cursor: not repeated
    assert "configured_stream" not in infill.prefix
    # further below than the suffix reaches: infill shows the line before the window too
    far = src + "\n" + "".join(f"x_{i} = {i}\n" for i in range(80)) + use
    _, doc = _open(far, "python")
    infill = build_completion_context(doc, cursor, _count_words, 120, 60)
    assert "configured_stream" not in infill.suffix
    assert "    configured_stream = stream\n" in dict(infill.prefix_parts)["after_cursor"]


def test_a_name_that_completes_the_word_may_come_from_another_open_document():
    # shapes.py is neither imported nor named here
    src = MAIN_SRC.removeprefix("from shapes import Box\n").removesuffix("return first.")
    src += "return unrel"
    store, doc = _open(src, "python")
    shapes = store.open("file:///work/shapes.py", SHAPES_SRC, "python", 1)
    position = _end_of(src)
    alone = build_completion_context(doc, position, _count_words, 180, 0)
    ctx = build_completion_context(doc, position, _count_words, 180, 0, [shapes])
    assert "unrelated_helper" not in alone.prefix
    assert "def unrelated_helper(values): ..." in dict(ctx.prefix_parts)["other_files"]


@pytest.mark.parametrize(
    "units, expected",
    [
        # a Python signature with nothing of its body after it ends in " ..."
        (
            [(1, "def first(a):", True), (5, "def second(b):", True)],
            "def first(a): ...\ndef second(b): ...\n\n",
        ),
        # a line of its body follows (an attribute, a use of the word at the cursor): no " ..."
        (
            [(1, "def first(a):", True), (3, "    token = a.read()", False)],
            "def first(a):\n    token = a.read()\n\n",
        ),
        (
            [(1, "class Box:", True), (2, "    def area(self):", True), (9, "def free():", True)],
            "class Box:\n    def area(self): ...\ndef free(): ...\n\n",
        ),
    ],
)
def test_layout_ends_a_python_signature_with_an_ellipsis_only_when_no_body_line_follows(
    units, expected
):
    from codet5_lsp.server import retrieval as R

    chosen = [
        R.Unit(("", row), R.DEFINITIONS, text, frozenset(), None, "", stub)
        for row, text, stub in units
    ]
    assert R.layout(chosen, "#") == [("definitions", expected)]
