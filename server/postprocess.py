"""Post-processing: turn the engine's raw text into a suggestion worth showing, or drop it.

The pipeline is LSP message -> document store -> context -> prompt -> engine ->
**post-processing** -> LSP response. A small model continues past the point where a human
would stop, repeats what is already in the document, loops, and indents in its own style; the
filters here correct for that. Each filter is a pure function `(text, ctx) -> str | None`
(None = drop the suggestion) so it can be tested alone against a table of golden cases;
`postprocess` runs them in order (the style of Tabby agent's `postprocess/`).

`text` is what would be inserted at the cursor: its first line continues `ctx.line_prefix`,
later lines are whole lines. Text uses "\\n" line ends (the document store normalises them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from codet5_lsp.server.context import CompletionContext
from codet5_lsp.server.repetition import cut_repeated_text
from codet5_lsp.server.syntax import leading_ws

Filter = Callable[[str, CompletionContext], "str | None"]

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
# What an editor auto-inserts after the cursor when an opener or a quote is typed.
AUTO_CLOSERS = ")]}\"'`"
_CLOSERS_OR_SPACE = frozenset(AUTO_CLOSERS + " ")

_HASH_COMMENT_LANGUAGES = frozenset(
    {
        "python",
        "ruby",
        "shellscript",
        "bash",
        "sh",
        "perl",
        "r",
        "yaml",
        "toml",
        "makefile",
        "dockerfile",
        "elixir",
        "julia",
        "coffeescript",
        "powershell",
        "nim",
        "crystal",
        "php",
    }
)
_SLASH_COMMENT_LANGUAGES = frozenset(
    {
        "c",
        "cpp",
        "java",
        "javascript",
        "javascriptreact",
        "typescript",
        "typescriptreact",
        "go",
        "rust",
        "csharp",
        "php",
        "kotlin",
        "swift",
        "scala",
        "dart",
        "jsonc",
        "groovy",
        "zig",
        "objective-c",
        "objective-cpp",
        "proto",
        "solidity",
        "less",
        "scss",
    }
)
_BACKTICK_STRING_LANGUAGES = frozenset(
    {
        "javascript",
        "javascriptreact",
        "typescript",
        "typescriptreact",
        "go",
        "kotlin",
    }
)
# Languages whose blocks end with an `end` line at the opener's indentation.
_END_KEYWORD_LANGUAGES = frozenset({"ruby", "lua", "elixir", "julia", "crystal"})


# --------------------------------------------------------------------------- helpers


def _tab_width(ctx: CompletionContext) -> int:
    """Columns one tab stands for: one indentation level of the document (4 for tab files)."""
    unit = ctx.indent_unit or "    "
    return 4 if "\t" in unit else len(unit)


def _indent_width(line: str, tab_width: int) -> int:
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += tab_width
        else:
            break
    return width


def _code_brackets(text: str, language_id: str) -> tuple[list[tuple[int, str]], bool]:
    """Brackets of `text` that are code (not inside a string or a line comment).

    Returns their (index, char) and whether the text ends inside an unterminated string.
    Strings do not span lines here: filters look at one line at a time, and a cursor inside
    a multi-line string is flagged by the context step (`in_string_or_comment`).
    """
    hash_comment = language_id in _HASH_COMMENT_LANGUAGES
    slash_comment = language_id in _SLASH_COMMENT_LANGUAGES
    quotes = "\"'`" if language_id in _BACKTICK_STRING_LANGUAGES else "\"'"
    found: list[tuple[int, str]] = []
    quote = ""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            quote = ""
        elif quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in quotes and not (
            ch == "'" and language_id == "rust" and not re.match(r"'(\\.|[^\\'])'", text[i : i + 4])
        ):
            quote = ch  # a Rust `'a` lifetime is not a quote; `'x'` is a char literal
        elif (hash_comment and ch == "#") or (slash_comment and text.startswith("//", i)):
            end = text.find("\n", i)
            if end < 0:
                break
            i = end
            continue
        elif ch in OPENERS or ch in CLOSERS:
            found.append((i, ch))
        i += 1
    return found, bool(quote)


def _push_brackets(text: str, language_id: str, stack: list[str]) -> int | None:
    """Push/pop the code brackets of `text` on `stack`.

    Returns the index of the first closer that closes nothing opened in `stack`'s scope (or
    the wrong kind of bracket), None when every closer matched.
    """
    brackets, _ = _code_brackets(text, language_id)
    for index, ch in brackets:
        if ch in OPENERS:
            stack.append(ch)
        elif stack and stack[-1] == CLOSERS[ch]:
            stack.pop()
        else:
            return index
    return None


def _imbalance(line: str, language_id: str) -> int:
    """Unmatched brackets plus an unterminated string: 0 for a balanced line."""
    brackets, open_string = _code_brackets(line, language_id)
    stack: list[str] = []
    unmatched = 0
    for _, ch in brackets:
        if ch in OPENERS:
            stack.append(ch)
        elif stack and stack[-1] == CLOSERS[ch]:
            stack.pop()
        else:
            unmatched += 1
    return unmatched + len(stack) + int(open_string)


def _cut_suffix_overlap(
    text: str, ctx: CompletionContext, min_overlap: int, inside: bool = False
) -> str:
    """Remove from a one-line `text` the part the line suffix already has.

    Candidates, in order of preference: cuts where `text` ends with the beginning of the
    (left-stripped) line suffix - the whole suffix or at least `min_overlap` characters of
    it, longest first; no cut; and with `inside`, cuts before an occurrence of the whole
    suffix inside `text` (latest first: `def f(|)` + `x):` -> `x`, the `:` would otherwise
    land before the editor's `)`). The candidate giving the line with the fewest unbalanced
    brackets and quotes wins, the earliest on a tie. That resolves `foo(|)` + `bar()`:
    cutting the `)` would leave `foo(bar()`, so it stays.
    """
    suffix = ctx.line_suffix.lstrip()
    body = text.rstrip()
    candidates: list[str] = []
    for k in range(min(len(body), len(suffix)), 0, -1):
        if (k >= min_overlap or k == len(suffix)) and body.endswith(suffix[:k]):
            candidates.append(body[:-k])
    candidates.append(text)
    if inside and suffix:
        starts = [i for i in range(len(body) - len(suffix)) if body.startswith(suffix, i)]
        candidates.extend(body[:i] for i in reversed(starts))
    if ctx.line_suffix[:1].isspace():  # the suffix brings its own leading space
        candidates = [c if c is text else c.rstrip() for c in candidates]
    return min(
        candidates, key=lambda c: _imbalance(ctx.line_prefix + c + ctx.line_suffix, ctx.language_id)
    )


def _first_nonblank(lines: str) -> str | None:
    for line in lines.split("\n"):
        if line.strip():
            return line
    return None


# --------------------------------------------------------------------------- filters


def trim_to_line(text: str, ctx: CompletionContext) -> str | None:
    """Cut at the first line end in single-line mode and whenever the cursor is mid-line.

    With text after the cursor a multi-line insertion would split the user's line; in
    single-line mode the user asked for the rest of this line only. The engine usually
    stops at the line end already; this is the guarantee.
    """
    if ctx.multiline and not ctx.mid_line:
        return text
    return text.split("\n", 1)[0]


def match_indentation_style(text: str, ctx: CompletionContext) -> str | None:
    """Re-indent continuation lines in the document's style (`ctx.indent_unit`).

    A model trained mostly on space-indented code writes spaces into a tab-indented file
    (and the other way round); accepting that would mix styles, which Python rejects and
    every linter flags. Tabs become one `indent_unit` each in space files; in tab files,
    runs of spaces become tabs, one per level of the completion's own space unit (2 when
    its shallowest space indent is 2, else 4); a partial level becomes a whole tab, since
    leading spaces after tabs are exactly the mix Python rejects. The first line
    is re-indented only when the cursor sits in the line's indentation.
    """
    unit = ctx.indent_unit or "    "
    use_tabs = "\t" in unit
    lines = text.split("\n")
    space_unit = 4
    if use_tabs:
        runs = [len(leading_ws(ln).lstrip("\t")) for ln in lines[1:] if ln.strip()]
        space_unit = 2 if min((r for r in runs if r), default=4) == 2 else 4

    def reindent(line: str) -> str:
        ws = leading_ws(line)
        if use_tabs:
            if " " not in ws:
                return line
            width = _indent_width(ws, space_unit)
            new_ws = "\t" * -(-width // space_unit)  # a partial level rounds up: no spaces
        else:
            if "\t" not in ws:
                return line
            new_ws = ws.replace("\t", unit)
        return new_ws + line[len(ws) :]

    out = []
    for i, line in enumerate(lines):
        if i == 0:
            if ctx.line_prefix.strip():
                out.append(line)
                continue
            whole = reindent(ctx.line_prefix + line)
            out.append(whole[len(ctx.line_prefix) :] if whole.startswith(ctx.line_prefix) else line)
        else:
            out.append(reindent(line))
    return "\n".join(out)


_BLOCK_OPENER_ENDINGS = (":", "{", "(", "[", "=>", "->", " do", " then")


def needed_indent(ctx: CompletionContext) -> tuple[int, bool] | None:
    """(columns, opens) of the line at the cursor: one level deeper than the previous code
    line when that line opens a block (or the cursor is known to start one), else the
    previous code line's own; `opens` says which. None when nothing precedes the line."""
    before = (
        ctx.prefix[: len(ctx.prefix) - len(ctx.line_prefix)]
        if ctx.prefix.endswith(ctx.line_prefix)
        else ctx.prefix
    )
    tab = _tab_width(ctx)
    unit = _indent_width(ctx.indent_unit or "    ", tab) or 4
    for line in reversed(before.split("\n")[-50:]):
        if not line.strip():
            continue
        width = _indent_width(line, tab)
        opens = ctx.cursor_kind == "block_start" or line.rstrip().endswith(_BLOCK_OPENER_ENDINGS)
        return (width + unit, True) if opens else (width, False)
    return None


def cap_first_line_indent(text: str, ctx: CompletionContext) -> str | None:
    """With the cursor in a line's indentation, never indent the line deeper than its block
    needs.

    After Enter the editor (or the user) has chosen the indentation; a suggestion that adds
    whitespace of its own - a token-boundary artefact (`Ġreturn` after `ĠĠĠĠ`; token healing
    prevents most, this is the guarantee) or a model that would go back into the block the
    user just left - would give `     return` or undo a dedent. So added whitespace is kept
    only up to what the line can need (`needed_indent`): from column 0, the previous line's
    depth (one level more after an opener); from a partial indent under an opener, the rest
    of that level; otherwise none.
    """
    if ctx.line_prefix.strip() or text[:1] not in (" ", "\t"):
        return text
    need = needed_indent(ctx)
    if need is None:
        return text
    needed, opens = need
    tab = _tab_width(ctx)
    first, newline, rest = text.partition("\n")
    lead = leading_ws(first)
    have = _indent_width(ctx.line_prefix, tab)
    target = needed if have == 0 or (opens and have < needed) else have
    if _indent_width(ctx.line_prefix + lead, tab) <= target:
        return text
    keep = ""
    for ch in lead:  # the longest start of the added whitespace that stays within target
        if _indent_width(ctx.line_prefix + keep + ch, tab) > target:
            break
        keep += ch
    return keep + first[len(lead) :] + newline + rest


def drop_repetitive_lines(text: str, ctx: CompletionContext) -> str | None:
    """Cut a model loop: a line (or a group of 2-3 lines) repeated 3+ times in a row.

    Greedy decoding of a small model falls into loops (`x += 1` over and over) until the
    token budget ends; the first occurrence is kept, the repetitions are cut.
    """
    lines = [line.rstrip() for line in text.split("\n")]
    for start in range(len(lines)):
        for period in (1, 2, 3):
            if start + 3 * period > len(lines):
                break
            chunk = lines[start : start + period]
            if any(not line.strip() for line in chunk):
                continue
            if (
                lines[start + period : start + 2 * period] == chunk
                and lines[start + 2 * period : start + 3 * period] == chunk
            ):
                return "\n".join(text.split("\n")[: start + period])
    return text


def trim_to_block(text: str, ctx: CompletionContext) -> str | None:
    """Multi-line mode: keep the block the cursor is in, stop where it ends.

    Models do not stop at the end of a block; they write the next function too. The block:
    - cursor after code (an opener like `def f():` / `if (x) {`): lines indented deeper
      than that line; a dedented line that closes a bracket the opener left open (`}`,
      `)`) or a matching `end` is kept as the block's last line;
    - cursor in a line's indentation: lines at least as deep as the first line (siblings in
      the same body are fine); at column 0, a new top-level statement after a blank line
      starts something else and ends it.
    In any line, a closer that would close a bracket opened before the cursor's line (the
    enclosing block, which the document already closes) ends the suggestion before it.
    """
    if not ctx.multiline or ctx.mid_line or "\n" not in text:
        return text
    tab = _tab_width(ctx)
    lang = ctx.language_id
    lines = text.split("\n")
    after_code = bool(ctx.line_prefix.strip())
    if after_code or not lines[0].strip():
        base = _indent_width(ctx.line_prefix, tab)
    else:
        base = _indent_width(ctx.line_prefix + lines[0], tab)

    stack: list[str] = []
    _push_brackets(ctx.line_prefix, lang, stack)  # a stray closer before the cursor: ignore
    cut = _push_brackets(lines[0], lang, stack)
    if cut is not None:
        return lines[0][:cut].rstrip()

    kept = [lines[0]]
    previous_blank = False
    for line in lines[1:]:
        if not line.strip():
            kept.append(line)
            previous_blank = True
            continue
        width = _indent_width(line, tab)
        dedented = width <= base if after_code else width < base
        if (
            not after_code
            and base == 0
            and previous_blank
            and width == 0
            and line.lstrip()[0] not in CLOSERS
        ):
            break  # a new top-level statement
        depth_before = len(stack)
        cut = _push_brackets(line, lang, stack)
        if cut is not None:
            head = line[:cut].rstrip()
            if head.strip() and not dedented:
                kept.append(head)
            break
        if dedented:
            closes_opener = line.lstrip()[0] in CLOSERS and depth_before > 0
            closes_end = (
                after_code
                and lang in _END_KEYWORD_LANGUAGES
                and width == base
                and re.match(r"end\b", line.lstrip()) is not None
            )
            if not (closes_opener or closes_end):
                break
            kept.append(line)
            if closes_end or not stack:
                break  # the opener's block is closed; `} else {` keeps it open
            previous_blank = False
            continue
        kept.append(line)
        previous_blank = False
    return "\n".join(kept).rstrip()


def drop_suffix_repetition(text: str, ctx: CompletionContext) -> str | None:
    """Drop or cut text that the document already has after the cursor.

    Models trained on whole files regenerate the code that follows: the rest of the line
    (`x = |  # note` -> `1  # note`) or the next line(s). Mid-line, an ending that repeats
    the line suffix is cut (bracket balance decides in ambiguous cases), and a suggestion
    that starts by repeating it is dropped. A suggestion line equal to the next non-blank
    line of the document (same indentation and text) is where the model started copying:
    everything from it on is cut (None if that is the first line). This also removes a
    duplicated block-closing line such as the `}` an editor auto-inserted.
    Closer-only line suffixes are left to `fix_auto_closed_brackets`.
    """
    suffix = ctx.line_suffix.strip()
    if suffix and not set(suffix) <= _CLOSERS_OR_SPACE:
        if len(suffix) >= 3 and text.lstrip().startswith(suffix):
            return None
        text = _cut_suffix_overlap(text, ctx, min_overlap=4)
        if not text.strip():
            return None
    next_line = _first_nonblank(ctx.next_lines)
    if next_line is None:
        return text
    tab = _tab_width(ctx)
    target = (_indent_width(next_line, tab), next_line.strip())
    lines = text.split("\n")
    for i, line in enumerate(lines):
        full = ctx.line_prefix + line if i == 0 else line
        if full.strip() and (_indent_width(full, tab), full.strip()) == target:
            if i == 0:
                return None
            return "\n".join(lines[:i]).rstrip()
    return text


def fix_auto_closed_brackets(text: str, ctx: CompletionContext) -> str | None:
    """Do not repeat closers the editor auto-inserted after the cursor.

    Typing `print(` leaves `print(|)`; a model that writes `"hi")` would give `print("hi"))`.
    When the rest of the line is only closers (`)`, `]`, `}`, quotes) and the suggestion
    ends with (the start of) them, that ending is removed - but only when the resulting
    line is at least as balanced as without the cut (`foo(|)` + `bar()` stays `bar()`).
    """
    suffix = ctx.line_suffix.strip()
    if not suffix or not set(suffix) <= _CLOSERS_OR_SPACE or "\n" in text:
        return text
    return _cut_suffix_overlap(text, ctx, min_overlap=1, inside=True)


def drop_trivial(text: str, ctx: CompletionContext) -> str | None:
    """Strip trailing whitespace; drop empty, blank and one-character suggestions.

    Ghost text that is blank or a single character costs the user attention and a
    keystroke to dismiss while saving almost nothing. Trailing whitespace (per line and at
    the end) is noise; mid-line, one space is kept when the line suffix starts with a word
    so that `x = |y` + `a +` does not glue into `a +y`.
    """
    stripped = "\n".join(line.rstrip() for line in text.split("\n")).rstrip()
    if len(stripped.strip()) <= 1:
        return None
    keep_space = (
        ctx.mid_line
        and "\n" not in stripped
        and text[len(stripped) : len(stripped) + 1] in (" ", "\t")
        and ctx.line_suffix[:1].isalnum()
    )
    return stripped + text[len(stripped)] if keep_space else stripped


DEFAULT_FILTERS: tuple[Filter, ...] = (
    trim_to_line,
    match_indentation_style,
    cap_first_line_indent,
    drop_repetitive_lines,
    trim_to_block,
    drop_suffix_repetition,
    fix_auto_closed_brackets,
    drop_trivial,
)


def postprocess(
    text: str, ctx: CompletionContext, filters: Sequence[Filter] = DEFAULT_FILTERS
) -> str | None:
    """Run `filters` in order; None ("no suggestion") as soon as one drops the text."""
    result = text.replace("\r\n", "\n")
    for step in filters:
        stepped = step(result, ctx)
        if not stepped:
            return None
        result = stepped
    return cut_repeated_text(result) or None  # a model loop: keep its first round
