"""Context step: what the model should see for a request, chosen from the document store.

The pipeline is LSP message -> document store -> **context** -> prompt -> engine ->
post-processing -> LSP response. This module owns the data that flows out of the context
step (`CompletionContext`) and the functions that build it from a `Document`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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

    @property
    def mid_line(self) -> bool:
        """True when there is non-whitespace text after the cursor on its line."""
        return bool(self.line_suffix.strip())
