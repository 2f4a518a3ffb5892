"""Context step: what the model should see for a request, chosen from the document store.

The pipeline is LSP message -> document store -> **context** -> prompt -> engine ->
post-processing -> LSP response. This module owns the data that flows out of the context
step (`CompletionContext`) and the functions that assemble it from a `Document`: the token
budget search that fits the text around the cursor, the choice of what goes before the window
(the similar function, or the retrieval of server/retrieval.py) and the final fields. The
syntax facts it rests on (definitions, imports, cursor kind, indentation) are
server/syntax.py's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codet5_lsp.server import retrieval as R
from codet5_lsp.server.languages import spec_for
from codet5_lsp.server.lru import LruCache
from codet5_lsp.server.syntax import (
    BLOCK_START,
    IN_COMMENT,
    IN_STRING,
    cursor_kind,
    detect_indent_unit,
    functions_in,
    identifiers,
    import_nodes,
    items_around,
    outer_node,
    top_level_item_at,
    tree_and_spec,
)

if TYPE_CHECKING:
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


# ---- token budgets ----------------------------------------------------------------------------
CountTokens = Callable[[str], int]

# A token is rarely longer than this many chars; bounds every window we tokenize.
_MAX_CHARS_PER_TOKEN = 32
_FIRST_GUESS_CHARS_PER_TOKEN = 4
_GOOD_ENOUGH = 0.88  # stop searching once a window uses this share of the budget
_AIM = 0.94  # aim a little under the budget so the first guess usually fits


def _largest_fitting(
    lengths: Sequence[int], tokens_of: Callable[[int], int], budget: int, ratio: float
) -> tuple[tuple[int, int] | None, float]:
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


def _fit_backward(
    doc: "Document", end: int, budget: int, count: CountTokens, whole_lines: bool = True
) -> tuple[int, int]:
    """(start, tokens): the longest text[start:end] within `budget`, starting at a line
    start when `whole_lines` (cut inside the line only when even one line is too long)."""
    if budget <= 0 or end == 0:
        return end, 0
    text = doc.text
    low = max(0, end - budget * _MAX_CHARS_PER_TOKEN)
    ratio = _ratio_hint(doc)

    def tokens_of(length: int) -> int:
        return count(text[end - length : end])

    found = None
    if whole_lines:
        starts = doc.line_starts_between(low, end - 1)
        found, ratio = _largest_fitting(
            [end - s for s in reversed(starts)], tokens_of, budget, ratio
        )
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
        return count(text[start : start + length])

    ends = doc.line_starts_between(start + 1, high)
    if high == len(text) and (not ends or ends[-1] != high):
        ends.append(high)
    found, ratio = _largest_fitting([e - start for e in ends], tokens_of, budget, ratio)
    if found is None:
        line_end = min(doc.line_end(doc.line_of(start)), high)
        found, ratio = _largest_fitting(range(1, line_end - start + 1), tokens_of, budget, ratio)
    return start + found[0] if found is not None else start


def _ratio_hint(doc: "Document") -> float:
    """Chars per token seen last time in this document (survives edits), else 4."""
    ratio = doc.context_cache.chars_per_token
    return float(ratio if ratio is not None else _FIRST_GUESS_CHARS_PER_TOKEN)


def _remember_ratio(doc: "Document", ratio: float) -> None:
    if 0.5 <= ratio <= _MAX_CHARS_PER_TOKEN:
        doc.context_cache.chars_per_token = ratio


def _pick_within(
    items: list[tuple[int, str]], budget: int, count: CountTokens, ratio: float, keep_last: bool
) -> tuple[list[tuple[int, str]], int]:
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
        chosen = chosen[len(chosen) - keep :] if keep_last else chosen[:keep]
    return [], 0


# ---- similar function: the tree-sitter context selection used for completions -------------
SIMILAR_QUERY_LINES = 10  # the lines before the cursor that describe what is being written
SIMILAR_SCAN_BYTES = 16_000  # look at the definitions this close to the cursor, no further
SIMILAR_SHARE = 3  # the similar function gets at most 1/3 of the budget
IMPORT_SHARE = 8  # the imports at most 1/8


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _cached_identifiers(doc: "Document", source: bytes) -> frozenset[bytes]:
    """identifiers(source), remembered per document across edits: the functions around the
    cursor rarely change between two keystrokes, and scanning them is the costly part."""
    return doc.context_cache.identifier_sets.get_or_compute(source, lambda: identifiers(source))


def nearby_functions(
    doc: "Document", offset: int, scan_bytes: int = SIMILAR_SCAN_BYTES
) -> list[tuple[int, int]]:
    """(start, end) UTF-8 byte offsets of the functions and methods near str `offset`
    (top-level items outward from the cursor's, both directions, until `scan_bytes` of
    source were visited)."""
    tree, spec = tree_and_spec(doc)
    if tree is None or spec is None:
        return []
    root = tree.root_node
    anchor = top_level_item_at(root, doc.byte_offset_of(offset))
    if anchor is None:
        return []
    items = items_around(anchor, scan_bytes, anchor.end_byte - anchor.start_byte)
    spans = []
    for item in items:
        for function in functions_in(item, spec):
            spans.append((outer_node(function, spec).start_byte, function.end_byte))
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
    query = identifiers(
        data[doc.byte_offset_of(doc.line_start(max(0, line - SIMILAR_QUERY_LINES))) : cursor]
    )
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
    return doc.text[doc.offset_of_byte(best[1]) : doc.offset_of_byte(best[2])]


def _head_within(source: str, budget: int, count: CountTokens, ratio: float) -> tuple[str, int]:
    """(text, tokens): the first lines of `source` within `budget` tokens (("", 0) if not
    even one line fits).

    Lines are first cut to about `budget * ratio` characters (`ratio`: chars per token seen in
    this document), so one tokenizer call usually settles it."""
    lines: list[str] = []
    used = 0
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


def _remembered_counts(doc: "Document", count: CountTokens) -> CountTokens:
    """`count`, remembering results per document across edits, for the parts that usually
    stay the same from one keystroke to the next (the imports, the similar function)."""
    owner = getattr(count, "__self__", count)  # the tokenizer behind a bound method
    cache = doc.context_cache
    if cache.token_counter is not owner:
        cache.token_counter = owner
        cache.token_counts = LruCache(cache.token_counts.limit)
    counts = cache.token_counts
    return lambda text: counts.get_or_compute(text, lambda: count(text))


def _fit_prefix_with_similar_function(
    doc: "Document", offset: int, count: CountTokens, budget: int
) -> tuple[str, bool]:
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
    imported, import_tokens = _pick_within(
        imported, budget // IMPORT_SHARE - 1, stable_count, ratio, keep_last=False
    )
    similar = most_similar_function(doc, offset, window_start)
    snippet, snippet_tokens = (
        _head_within(similar, budget // SIMILAR_SHARE - 1, stable_count, ratio)
        if similar
        else ("", 0)
    )
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
    return doc.text[offset : _fit_forward(doc, offset, budget, count)]


def _context_at(
    doc: "Document",
    offset: int,
    prefix: str,
    suffix: str,
    prefix_truncated: bool,
    prefix_parts: tuple[tuple[str, str], ...] = (),
) -> CompletionContext:
    """The CompletionContext of `prefix`/`suffix` at `offset`, with the cursor's line facts."""
    line = doc.line_of(offset)
    line_end = doc.line_end(line)
    kind = cursor_kind(doc, offset)
    return CompletionContext(
        prefix=prefix,
        suffix=suffix,
        line_prefix=doc.text[doc.line_start(line) : offset],
        line_suffix=doc.text[offset:line_end],
        next_lines="\n".join(doc.lines(line + 1, line + 4)),
        language_id=doc.language_id,
        multiline=kind == BLOCK_START,
        in_string_or_comment=kind in (IN_STRING, IN_COMMENT),
        indent_unit=detect_indent_unit(doc, line),
        cursor_kind=kind,
        prefix_truncated=prefix_truncated,
        prefix_parts=prefix_parts,
    )


def build_completion_context(
    doc: "Document",
    position: object,
    count_tokens: CountTokens,
    max_prefix_tokens: int,
    max_suffix_tokens: int,
    open_documents: Sequence["Document"] = (),
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
    parts, truncated = _fit_prefix_with_retrieval(
        doc, offset, count_tokens, max_prefix_tokens, open_documents, infill=max_suffix_tokens > 0
    )
    suffix = _fit_suffix(doc, offset, count_tokens, max_suffix_tokens)
    return _context_at(
        doc, offset, "".join(text for _, text in parts), suffix, truncated, tuple(parts)
    )


def similar_function_context(
    doc: "Document",
    position: object,
    count_tokens: CountTokens,
    max_prefix_tokens: int,
    max_suffix_tokens: int,
) -> CompletionContext:
    """The previous selection (imports + the most similar function + window), kept for the
    comparisons of bench/context_quality.py."""
    offset = doc.offset_at(position)
    prefix, truncated = _fit_prefix_with_similar_function(
        doc, offset, count_tokens, max_prefix_tokens
    )
    suffix = _fit_suffix(doc, offset, count_tokens, max_suffix_tokens)
    return _context_at(doc, offset, prefix, suffix, truncated)


# The lines before the window get at most 1/HEAD_SHARE of the budget: more raises identifier
# recall but shortens the window, which the labmodel uses (docs/context-selection.md).
HEAD_SHARE = 6


def _fit_prefix_with_retrieval(
    doc: "Document",
    offset: int,
    count: CountTokens,
    budget: int,
    open_documents: Sequence["Document"] = (),
    infill: bool = False,
) -> tuple[list[tuple[str, str]], bool]:
    """(parts, truncated): the prefix within `budget` as (kind, text) parts, the cursor
    window last (see build_completion_context and server/retrieval.py). With `infill` the
    prompt shows the text after the cursor anyway: the lines after it are not repeated."""
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
    completions = R.word_completions(doc, offset, window_start, open_documents)
    units, weights = R.document_units(
        doc,
        offset,
        window_start,
        following_lines=0 if infill else R.FOLLOWING_LINES,
        completions=completions,
    )
    if open_documents:
        names = [*completions.elsewhere, *R.imported_names(doc, window_start, offset)]
        units += R.other_document_units(doc, names, open_documents)
    spec = spec_for(doc.language_id)
    comment = spec.line_comment if spec is not None else "#"
    covered = identifiers(
        doc.source_bytes[doc.byte_offset_of(window_start) : doc.byte_offset_of(offset)]
    )
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


def last_n_tokens_context(
    doc: "Document",
    position: object,
    count_tokens: CountTokens,
    max_prefix_tokens: int,
    max_suffix_tokens: int,
) -> CompletionContext:
    """Baseline for quality comparisons: the plain last-N-tokens window (cut anywhere, no
    imports or scope headers), with the same suffix and flags as build_completion_context."""
    offset = doc.offset_at(position)
    start, _ = _fit_backward(doc, offset, max_prefix_tokens, count_tokens, whole_lines=False)
    suffix = _fit_suffix(doc, offset, count_tokens, max_suffix_tokens)
    return _context_at(doc, offset, doc.text[start:offset], suffix, start > 0)
