"""Golden cases for the post-processing filters: document with a cursor, raw model text, result.

Documents are written with `█` at the cursor; `at()` turns them into the CompletionContext the
context step would hand over (line prefix/suffix, next lines).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codet5_lsp.server.context import CompletionContext
from codet5_lsp.server.postprocess import (
    DEFAULT_FILTERS,
    cap_first_line_indent,
    drop_repetitive_lines,
    drop_suffix_repetition,
    drop_trivial,
    fix_auto_closed_brackets,
    match_indentation_style,
    postprocess,
    trim_to_block,
    trim_to_line,
)

CURSOR = "█"


def at(
    document: str, *, multiline: bool = False, language: str = "python", indent_unit: str = "    "
) -> CompletionContext:
    before, after = document.split(CURSOR)
    line_prefix = before.rsplit("\n", 1)[-1]
    line_suffix, _, next_lines = after.partition("\n")
    return CompletionContext(
        prefix=before,
        suffix=after,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        next_lines=next_lines,
        language_id=language,
        multiline=multiline,
        indent_unit=indent_unit,
    )


ML = {"multiline": True}
C = {"language": "c"}
TABS = {"indent_unit": "\t"}

# (document, options, raw model text, expected)
TRIM_TO_LINE = [
    pytest.param("x = █\n", {}, "compute()\ny = 2", "compute()", id="single-line-mode-cuts"),
    pytest.param("foo(█)\n", ML, "a, b\n    c", "a, b", id="mid-line-cuts-even-in-multiline"),
    pytest.param(
        "def f():█\n", ML, "\n    return 1", "\n    return 1", id="multiline-block-start-kept"
    ),
    pytest.param(
        "    █\n", ML, "a = 1\n    b = 2", "a = 1\n    b = 2", id="multiline-line-start-kept"
    ),
    pytest.param("x = █\n", {}, "\nfoo()", "", id="leading-newline-leaves-nothing"),
    pytest.param("x = █   \n", {}, "1\n2", "1", id="trailing-space-suffix-is-not-mid-line"),
]

MATCH_INDENTATION = [
    pytest.param(
        "def f():█\n",
        {**ML, **TABS},
        "\n    if x:\n        y()",
        "\n\tif x:\n\t\ty()",
        id="spaces-to-tabs",
    ),
    pytest.param(
        "def f():█\n", ML, "\n\tif x:\n\t\ty()", "\n    if x:\n        y()", id="tabs-to-spaces"
    ),
    pytest.param(
        "def f():█\n",
        {**ML, "indent_unit": "  "},
        "\n\tx = 1",
        "\n  x = 1",
        id="tab-to-two-space-unit",
    ),
    pytest.param(
        "\tdef f(self):█\n",
        {**ML, **TABS},
        "\n\t    return 1",
        "\n\t\treturn 1",
        id="tab-then-spaces-in-tab-file",
    ),
    pytest.param(
        "if x:█\n",
        {**ML, **TABS},
        "\n  a()\n  if b:\n    c()",
        "\n\ta()\n\tif b:\n\t\tc()",
        id="two-space-model-unit-in-tab-file",
    ),
    pytest.param("█\n", {**ML, **TABS}, "    x = 1", "\tx = 1", id="line-start-first-line"),
    pytest.param("x = █\n", TABS, "  1", "  1", id="first-line-after-code-untouched"),
    pytest.param(
        "f(█\n", {**ML, **TABS}, "a,\n      b)", "a,\n\t\tb)", id="partial-level-rounds-up-to-a-tab"
    ),
    pytest.param(
        "if a:█\n", {**ML, **TABS}, "\n   b = 1", "\n\tb = 1", id="odd-spaces-become-a-tab"
    ),
    pytest.param("def f():█\n", ML, "\n    x = 1", "\n    x = 1", id="already-matching"),
]

DROP_REPETITIVE = [
    pytest.param("█", {}, "x += 1\nx += 1\nx += 1\nx += 1", "x += 1", id="same-line-loop"),
    pytest.param(
        "    █", ML, "a()\n    b()\n    b()\n    b()", "a()\n    b()", id="loop-after-code"
    ),
    pytest.param("█", ML, "a\nb\na\nb\na\nb\n", "a\nb", id="two-line-period"),
    pytest.param("█", ML, "x = 1\nx = 1\ny = 2", "x = 1\nx = 1\ny = 2", id="twice-is-fine"),
    pytest.param("█", C, "}\n  }\n}", "}\n  }\n}", id="different-indentation-is-not-a-loop"),
    pytest.param("█", ML, "a\n\n\n\nb", "a\n\n\n\nb", id="blank-lines-are-not-a-loop"),
]

TRIM_TO_BLOCK = [
    pytest.param(
        "def f():█\n",
        ML,
        "\n    x = 1\n    return x\n\ndef g():\n    pass",
        "\n    x = 1\n    return x",
        id="python-block-start-stops-at-dedent",
    ),
    pytest.param(
        "def f():\n    █\n",
        ML,
        "x = 1\n    return x\nprint(f())",
        "x = 1\n    return x",
        id="python-line-start-keeps-siblings",
    ),
    pytest.param(
        "class A:\n    def f(self):█\n",
        ML,
        "\n        return 1\n\n    def g(self):\n        return 2",
        "\n        return 1",
        id="python-method-ends-at-next-method",
    ),
    pytest.param(
        "█\n",
        ML,
        "def g():\n    return 2\n\n\ndef h():\n    pass",
        "def g():\n    return 2",
        id="column-0-one-top-level-statement",
    ),
    pytest.param(
        "█\n",
        ML,
        "import os\nimport sys\n\nx = 1",
        "import os\nimport sys",
        id="column-0-consecutive-statements",
    ),
    pytest.param(
        "█\n",
        ML,
        "def g():\n    x = 1\n\n    return x\n\ny = g()",
        "def g():\n    x = 1\n\n    return x",
        id="column-0-blank-line-inside-body",
    ),
    pytest.param(
        "█\n",
        {**ML, **C},
        "int g() {\n    a();\n\n}\n\nint h;",
        "int g() {\n    a();\n\n}",
        id="column-0-closer-after-blank-line",
    ),
    pytest.param(
        "if (x) {█\n",
        {**ML, **C},
        "\n    a();\n}\nfoo();",
        "\n    a();\n}",
        id="brace-closing-line-of-opener-kept",
    ),
    pytest.param(
        "if (x) {█\n",
        {**ML, **C},
        "\n    a();\n} else {\n    b();\n}\nfoo();",
        "\n    a();\n} else {\n    b();\n}",
        id="brace-else-keeps-block-open",
    ),
    pytest.param(
        "int f() {\n    █\n}",
        {**ML, **C},
        "a();\n    return 1;\n}\n\nint g() {",
        "a();\n    return 1;",
        id="brace-enclosing-block-closer-cut",
    ),
    pytest.param(
        "void f() {\n\t█\n}",
        {**ML, **C, **TABS},
        "a();\n\tb(); }\n\nint g;",
        "a();\n\tb();",
        id="brace-enclosing-closer-mid-line-cut-tabs",
    ),
    pytest.param(
        "x = foo(█\n",
        ML,
        "\n    a,\n    b,\n)\ny = 2",
        "\n    a,\n    b,\n)",
        id="python-bracket-closing-line-kept",
    ),
    pytest.param(
        "items.each do |i|█\n",
        {**ML, "language": "ruby"},
        "\n  puts i\nend\nputs 1",
        "\n  puts i\nend",
        id="ruby-end-line-kept",
    ),
    pytest.param("x = █\n", {}, "1\n2", "1\n2", id="single-line-mode-untouched"),
    pytest.param(
        "def f():\n    █",
        ML,
        "s = '}'\n    return s  # }\nz = 1",
        "s = '}'\n    return s  # }",
        id="brackets-in-strings-and-comments-ignored",
    ),
]

DROP_SUFFIX_REPETITION = [
    pytest.param("x = █  # note\n", {}, "1  # note", "1", id="mid-line-repeats-line-suffix"),
    pytest.param(
        "total = █ + tax\n", {}, "price * 2 + tax", "price * 2", id="mid-line-operator-suffix"
    ),
    pytest.param("return █value\n", {}, "value + 1", None, id="starts-by-repeating-suffix"),
    pytest.param("print(█y)\n", {}, "f(y)", "f(y)", id="ambiguous-overlap-kept-balanced"),
    pytest.param(
        "def f():\n    █\n    return x\n",
        ML,
        "y = 2\n    return x",
        "y = 2",
        id="next-line-repeated-cut",
    ),
    pytest.param(
        "def f():\n    █\n    return x\n",
        ML,
        "return x",
        None,
        id="first-line-is-next-line-dropped",
    ),
    pytest.param(
        "def f():\n    ret█\n    return x\n",
        {},
        "urn x",
        None,
        id="completing-into-next-line-dropped",
    ),
    pytest.param(
        "if (x) {\n    █\n}\n", {**ML, **C}, "a();\n}", "a();", id="duplicated-block-closing-line"
    ),
    pytest.param(
        "if (x) {\n    if (y) {█\n}\n",
        {**ML, **C},
        "\n        a();\n    }",
        "\n        a();\n    }",
        id="closing-line-at-other-indent-kept",
    ),
    pytest.param(
        "def f():\n    █\n\n\n    return x\n",
        ML,
        "y = 1\n    return x",
        "y = 1",
        id="blank-lines-before-next-line-skipped",
    ),
    pytest.param("x = █\n", {}, "1", "1", id="nothing-after-cursor"),
    pytest.param("foo(█)\n", {}, "a)", "a)", id="closer-suffix-left-to-bracket-filter"),
]

FIX_AUTO_CLOSED = [
    pytest.param("print(foo(█))\n", {}, "x))", "x", id="both-closers-repeated"),
    pytest.param("print(foo(█))\n", {}, "x)", "x", id="one-of-two-closers-repeated"),
    pytest.param("foo(█)\n", {}, "bar()", "bar()", id="own-pair-not-cut"),
    pytest.param('print("█")\n', {}, 'hello")', "hello", id="quote-and-paren"),
    pytest.param("xs = [█]\n", {}, "1, 2]", "1, 2", id="square-bracket"),
    pytest.param(
        "const o = {█};\n",
        {"language": "javascript"},
        "a: 1}",
        "a: 1}",
        id="suffix-not-only-closers-untouched",
    ),
    pytest.param("foo(█)\n", {}, "a, b", "a, b", id="no-closer-in-completion"),
    pytest.param("f(g(█))\n", {}, "h(x)))", "h(x)", id="inner-call-plus-two-closers"),
    pytest.param("x = f(█)\n", {}, "')'", "')'", id="closer-inside-string-ignored"),
    pytest.param("def f(█)\n", {}, "x):", "x", id="closer-then-more-text-cut-at-closer"),
    pytest.param(
        "foo(█)\n",
        {},
        "a) + g(b)",
        "a) + g(b",
        id="ending-closer-reused-when-line-stays-as-model-wrote",
    ),
    pytest.param("foo(█)\n", {}, "a)[0]", "a", id="closer-inside-then-index-cut"),
    pytest.param("foo(█)\n", {}, "g(a) + h(b)", "g(a) + h(b)", id="inner-pairs-not-cut"),
]

DROP_TRIVIAL = [
    pytest.param("x = █\n", {}, "", None, id="empty"),
    pytest.param("x = █\n", {}, "  \n\t ", None, id="whitespace-only"),
    pytest.param("x = █\n", {}, "1", None, id="one-character"),
    pytest.param("x = █\n", {}, " 1 ", None, id="one-character-after-strip"),
    pytest.param("x = █\n", {}, "10  ", "10", id="trailing-spaces-stripped"),
    pytest.param(
        "def f():█\n",
        ML,
        "\n    a = 1   \n    b = 2\n\n\n",
        "\n    a = 1\n    b = 2",
        id="per-line-and-trailing-blank-lines",
    ),
    pytest.param("x = █y\n", {}, "a + ", "a + ", id="mid-line-keeps-one-space-before-word"),
    pytest.param("f(█)\n", {}, "a, b  ", "a, b", id="mid-line-before-closer-stripped"),
]

PIPELINE = [
    pytest.param("x = █\n", {}, "compute()\ny = 2", "compute()", id="single-line"),
    pytest.param("print(█)\n", {}, 'f"{x}")\nprint(y)', 'f"{x}"', id="mid-line-auto-closed"),
    pytest.param(
        "def f():█\n",
        {**ML, **TABS},
        "\n    total = 0\n    total = 0\n    total = 0\n    total = 0",
        "\n\ttotal = 0",
        id="loop-and-tabs",
    ),
    pytest.param(
        "def f(xs):█\n    return total\n",
        ML,
        "\n    total = sum(xs)\n    return total\n\ndef g():\n    pass",
        "\n    total = sum(xs)",
        id="block-then-next-line",
    ),
    pytest.param(
        "if (ok) {\n    █\n}\n",
        {**ML, **C},
        "run();   \n}\n\nint main() {",
        "run();",
        id="brace-body",
    ),
    pytest.param("x = █\n", {}, " ", None, id="blank-dropped"),
    pytest.param("foo(█)\n", {}, ")", None, id="only-the-auto-closer"),
    pytest.param("x = █\n", {}, "a\r\n", None, id="crlf-stripped-then-trivial"),
    pytest.param(
        "def f():\n    █\n    return x\n", ML, "return x\n", None, id="duplicate-of-next-line"
    ),
]


# After Enter + auto-indent: a suggestion never adds whitespace beyond what the block needs.
BLOCK = {"multiline": True, "kind": "block_start"}
CAP_INDENT = [
    pytest.param(
        "def add(a, b):\n    █\n",
        BLOCK,
        " return a + b",
        "return a + b",
        id="stray-space-after-auto-indent",
    ),
    pytest.param(
        "def add(a, b):\n    █\n", BLOCK, "     return a", "return a", id="a-whole-extra-level-too"
    ),
    pytest.param(
        "def add(a, b):\n\t█\n", {**BLOCK, **TABS}, " return a", "return a", id="tab-indented-file"
    ),
    pytest.param(
        "def add(a, b):\n\t█\n", {**BLOCK, **TABS}, "\treturn a", "return a", id="tab-on-tab"
    ),
    pytest.param(
        "def f():\n█\n",
        BLOCK,
        "    return 1",
        "    return 1",
        id="cursor-at-column-0-brought-to-the-body",
    ),
    pytest.param(
        "def f():\n  █\n",
        BLOCK,
        "    return 1",
        "  return 1",
        id="partial-indent-completed-to-one-level",
    ),
    pytest.param(
        "def f():\n    if x:\n        █\n",
        BLOCK,
        " y = 1\n        z = 2",
        "y = 1\n        z = 2",
        id="later-lines-untouched",
    ),
    pytest.param(
        "def f():\n    x = 1\n    █\n",
        {"kind": "line_start"},
        "  y = 2",
        "y = 2",
        id="sibling-line-no-deeper-than-previous",
    ),
    pytest.param(
        "def f():\n    x = (\n    █\n",
        {"kind": "line_start"},
        "    1,",
        "    1,",
        id="after-an-open-bracket-one-level-more",
    ),
    pytest.param("x = █\n", {}, " 1", " 1", id="mid-line-untouched"),
    pytest.param(
        "def f(x):\n    if x:\n        y = 1\n    █\n",
        {"kind": "line_start"},
        "    z = 2",
        "z = 2",
        id="a-dedent-is-not-undone",
    ),
    pytest.param(
        "def f(x):\n    if x:\n        y = 1\n█\n",
        {"kind": "line_start"},
        "        z = 2",
        "        z = 2",
        id="from-column-0-up-to-the-previous-line",
    ),
    pytest.param(
        "def f(x):\n    if x:\n        y = 1\n█\n",
        {"kind": "line_start"},
        "          z = 2",
        "        z = 2",
        id="from-column-0-never-deeper",
    ),
]


@pytest.mark.parametrize(("document", "options", "text", "expected"), CAP_INDENT)
def test_cap_first_line_indent(document, options, text, expected):
    options = dict(options)
    kind = options.pop("kind", "mid_line")
    ctx = at(document, **options)
    ctx = CompletionContext(**{**ctx.__dict__, "cursor_kind": kind})
    assert cap_first_line_indent(text, ctx) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), TRIM_TO_LINE)
def test_trim_to_line(document, options, text, expected):
    assert trim_to_line(text, at(document, **options)) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), MATCH_INDENTATION)
def test_match_indentation_style(document, options, text, expected):
    assert match_indentation_style(text, at(document, **options)) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), DROP_REPETITIVE)
def test_drop_repetitive_lines(document, options, text, expected):
    assert drop_repetitive_lines(text, at(document, **options)) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), TRIM_TO_BLOCK)
def test_trim_to_block(document, options, text, expected):
    assert trim_to_block(text, at(document, **options)) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), DROP_SUFFIX_REPETITION)
def test_drop_suffix_repetition(document, options, text, expected):
    assert drop_suffix_repetition(text, at(document, **options)) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), FIX_AUTO_CLOSED)
def test_fix_auto_closed_brackets(document, options, text, expected):
    assert fix_auto_closed_brackets(text, at(document, **options)) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), DROP_TRIVIAL)
def test_drop_trivial(document, options, text, expected):
    assert drop_trivial(text, at(document, **options)) == expected


@pytest.mark.parametrize(("document", "options", "text", "expected"), PIPELINE)
def test_pipeline(document, options, text, expected):
    assert postprocess(text, at(document, **options)) == expected


def test_pipeline_runs_custom_filters_in_order():
    ctx = at("x = █\n")
    seen: list[str] = []

    def record(name: str, result):
        def step(text: str, _ctx: CompletionContext):
            seen.append(name)
            return result(text)

        return step

    steps = [record("a", str.upper), record("b", lambda t: t + "!")]
    assert postprocess("abc", ctx, steps) == "ABC!"
    assert seen == ["a", "b"]
    seen.clear()
    assert postprocess("abc", ctx, [record("a", lambda t: None), record("b", str.upper)]) is None
    assert seen == ["a"]  # a dropped suggestion stops the pipeline


def test_default_filters_are_pure():
    """Filters must not depend on call order or mutate the context (they are reused)."""
    ctx = at("def f():█\n    return x\n", multiline=True)
    text = "\n    y = 1\n    return x\n\ndef g(): pass"
    first = [step(text, ctx) for step in DEFAULT_FILTERS]
    second = [step(text, ctx) for step in reversed(DEFAULT_FILTERS)][::-1]
    assert first == second
    assert ctx == at("def f():█\n    return x\n", multiline=True)


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                "\n",
                "    ",
                "  ",
                " ",
                "\t",
                "ab",
                "x = 1",
                "(",
                ")",
                "{",
                "}",
                "[",
                "]",
                ":",
                '"',
                "'",
                "#",
                "end",
            ]
        ),
        max_size=25,
    ).map("".join),
    before=st.text(alphabet=st.sampled_from(list('ab (){"\n\t ')), max_size=20),
    after=st.text(alphabet=st.sampled_from(list("b)}]\"'\n ")), max_size=20),
    multiline=st.booleans(),
    language=st.sampled_from(["python", "c", "ruby", "rust", "plaintext"]),
    indent_unit=st.sampled_from(["    ", "\t", "  "]),
)
def test_pipeline_properties(text, before, after, multiline, language, indent_unit):
    """Whatever the model writes: no crash; None or a non-trivial, right-trimmed suggestion;
    one line whenever one line was asked for."""
    ctx = at(
        before + CURSOR + after, multiline=multiline, language=language, indent_unit=indent_unit
    )
    result = postprocess(text, ctx)
    if result is None:
        return
    assert len(result.strip()) > 1
    assert result == result.rstrip() or (ctx.mid_line and result[:-1] == result.rstrip())
    if not multiline or ctx.mid_line:
        assert "\n" not in result
    continuation_indents = [
        line[: len(line) - len(line.lstrip())] for line in result.split("\n")[1:]
    ]
    if indent_unit == "\t":
        assert all(not ws.startswith(" ") for ws in continuation_indents)
    else:
        assert all("\t" not in ws for ws in continuation_indents)
