"""Doc comments in each language's own style, for the "Insert generated docstring" action.

Pure functions: given a language, the summary and where the definition sits, return the text
to insert and the line to insert it at (column 0). Python puts the docstring inside the body;
every other language puts a comment block above the definition at its indentation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocInsertion:
    line: int  # insert at the start of this line (0-based)
    text: str  # whole lines, ending with a newline


def _sentence(summary: str) -> str:
    text = " ".join(summary.split()).strip()
    if text and text[-1] not in ".!?":
        text += "."
    return text[:1].upper() + text[1:]


def render_doc_comment(language_id: str, summary: str, indent: str, name: str = "") -> str:
    """The doc comment lines (with newline) for `summary` at `indent`."""
    s = _sentence(summary)
    lang = language_id.lower()
    if lang == "python":
        quoted = s.replace('"""', r"\"\"\"")
        return f'{indent}"""{quoted}"""\n'
    if lang == "go":
        # Go doc comments start with the name of the thing they document.
        body = s if not name or s.startswith(name) else f"{name} {s[:1].lower()}{s[1:]}"
        return f"{indent}// {body}\n"
    if lang == "rust":
        return f"{indent}/// {s}\n"
    if lang in ("csharp", "c_sharp", "c#"):
        return f"{indent}/// <summary>\n{indent}/// {s}\n{indent}/// </summary>\n"
    if lang == "ruby":
        return f"{indent}# {s}\n"
    if lang in (
        "javascript",
        "javascriptreact",
        "typescript",
        "typescriptreact",
        "java",
        "php",
        "c",
        "cpp",
        "kotlin",
        "scala",
        "swift",
    ):
        safe = s.replace("*/", "* /")
        return f"{indent}/**\n{indent} * {safe}\n{indent} */\n"
    return f"{indent}# {s}\n" if lang in ("shellscript", "perl", "r") else f"{indent}// {s}\n"


def docstring_insertion(
    language_id: str,
    summary: str,
    *,
    def_line: int,
    def_indent: str,
    body_line: int | None = None,
    body_indent: str | None = None,
    name: str = "",
    indent_unit: str = "    ",
) -> DocInsertion:
    """Where and what to insert for a definition starting at `def_line`.

    Python: the docstring becomes the first statement of the body (`body_line`, at
    `body_indent`, or one indent unit deeper than the `def` when the body is on the header
    line). Others: a comment block just above `def_line` at the definition's indentation.
    """
    if language_id.lower() == "python":
        indent = body_indent if body_indent is not None else def_indent + indent_unit
        line = body_line if body_line is not None else def_line + 1
        return DocInsertion(line, render_doc_comment("python", summary, indent))
    return DocInsertion(def_line, render_doc_comment(language_id, summary, def_indent, name))
