"""Doc comment rendering and placement for every supported language (golden cases)."""

from __future__ import annotations

import pytest

from codet5_lsp.server.docstrings import docstring_insertion, render_doc_comment


@pytest.mark.parametrize(
    "lang, indent, name, expected",
    [
        ("python", "    ", "f", '    """Return the sum of a and b."""\n'),
        ("javascript", "  ", "f", "  /**\n   * Return the sum of a and b.\n   */\n"),
        ("typescript", "", "f", "/**\n * Return the sum of a and b.\n */\n"),
        ("typescriptreact", "", "f", "/**\n * Return the sum of a and b.\n */\n"),
        ("java", "    ", "f", "    /**\n     * Return the sum of a and b.\n     */\n"),
        ("php", "    ", "f", "    /**\n     * Return the sum of a and b.\n     */\n"),
        ("c", "", "f", "/**\n * Return the sum of a and b.\n */\n"),
        ("cpp", "\t", "f", "\t/**\n\t * Return the sum of a and b.\n\t */\n"),
        (
            "csharp",
            "    ",
            "F",
            "    /// <summary>\n    /// Return the sum of a and b.\n    /// </summary>\n",
        ),
        ("go", "", "Add", "// Add return the sum of a and b.\n"),
        ("rust", "    ", "add", "    /// Return the sum of a and b.\n"),
        ("ruby", "  ", "add", "  # Return the sum of a and b.\n"),
    ],
)
def test_render_doc_comment(lang, indent, name, expected):
    assert render_doc_comment(lang, "return the sum of a and b", indent, name) == expected


@pytest.mark.parametrize(
    "summary, expected",
    [
        ("  many   spaces\nand lines ", '"""Many spaces and lines."""\n'),
        ("Already ends!", '"""Already ends!"""\n'),
        ('has """ quotes', '"""Has \\"\\"\\" quotes."""\n'),
    ],
)
def test_python_docstring_text_is_one_clean_sentence(summary, expected):
    assert render_doc_comment("python", summary, "") == expected


def test_comment_terminator_cannot_break_out_of_jsdoc():
    assert "*/\n" == render_doc_comment("javascript", "a */ b", "")[-3:]
    assert render_doc_comment("javascript", "a */ b", "").count("*/") == 1


def test_python_goes_into_the_body_at_its_indentation():
    ins = docstring_insertion(
        "python", "adds", def_line=3, def_indent="    ", body_line=4, body_indent="        "
    )
    assert (ins.line, ins.text) == (4, '        """Adds."""\n')


def test_python_body_on_the_header_line_gets_one_unit_deeper():
    ins = docstring_insertion("python", "adds", def_line=0, def_indent="", indent_unit="\t")
    assert (ins.line, ins.text) == (1, '\t"""Adds."""\n')


def test_other_languages_go_above_the_definition():
    ins = docstring_insertion(
        "rust",
        "adds",
        def_line=7,
        def_indent="    ",
        body_line=8,
        body_indent="        ",
        name="add",
    )
    assert (ins.line, ins.text) == (7, "    /// Adds.\n")


def test_go_comment_keeps_a_summary_that_already_starts_with_the_name():
    assert render_doc_comment("go", "Add returns a+b", "", "Add") == "// Add returns a+b.\n"
