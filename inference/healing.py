"""Token healing: where the prompt ends inside a token, let the model write that token itself.

The byte-level BPE of CodeT5+ (and of CodeGen) glues a word to the space before it
(`Ġreturn`) and merges runs of indentation (`ĠĠĠ`). A prompt that ends after Enter and
auto-indent ends in `ĠĠĠĠ`, a token the model never saw before a word (in training the same
text is `ĠĠĠ` + `Ġreturn`), so the model continues with `Ġreturn` and the suggestion starts with
a stray space. A cursor in the middle of `self.fo` leaves `fo` as a whole token, where the model
would have written `foo` or `format`. Healing backs the prompt off to the last natural boundary
and constrains the first generated token(s) to reproduce the removed text ("removed"); the
removed text is then cut from the front of the suggestion, so what is inserted continues exactly
what the user typed (measured: ../shared/notes/token-healing.md, bench/results/quality.md).

Everything here is in token-string space (the strings CTranslate2 takes, `Ġ` for a space): the
removed text is the concatenation of the removed tokens, and a generated token is *consistent*
with the still-unreproduced text `rest` when one of the two starts with the other.

This module is pure: a `TokenHealer` is built once per tokenizer (its vocabulary), `plan`
decides what to back off, and `allowed` / `disallowed` give the constraint one step needs.
The engine (`engine.py`) runs the constrained decoding.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Protocol

# At most this many tokens, and this many characters of token text, are backed off: enough for
# a split identifier or an indentation run, bounded so that a constraint stays cheap.
MAX_BACKOFF_TOKENS = 3
MAX_BACKOFF_CHARS = 48

# Continuations tried after the prompt's tail: where one of them re-tokenizes the tail
# differently, the tokenizer's merges say the tail is not a natural boundary.
_PROBES = ("a", "e", "s", "_", "0", " ", "(", ".", "=", ":")


class Vocabulary(Protocol):
    """What healing needs of a tokenizer (`inference.tokenizer.CodeTokenizer` provides it)."""

    def vocabulary(self) -> dict[str, int]: ...
    def special_tokens(self) -> set[str]: ...
    def tokens(self, text: str) -> list[str]: ...


@dataclass(frozen=True)
class HealingPlan:
    """The prompt's tokens without the backed-off tail, and that tail's token text."""

    kept: list[str]
    removed: str  # token-string text the generation must start with ("" = no healing)
    removed_tokens: int = 0


def is_whitespace(text: str) -> bool:
    """Token text made only of spaces and tabs (`Ġ`, `ĉ`): indentation or a space."""
    return bool(text) and not text.strip("Ġĉ")


class TokenHealer:
    """Back-off decisions and first-token constraints for one vocabulary."""

    def __init__(self, tokenizer: Vocabulary):
        self._tokenizer = tokenizer
        specials = tokenizer.special_tokens()
        vocab = tokenizer.vocabulary()
        self.special = frozenset(specials)
        # Normal tokens, sorted: the tokens that start with a text are one contiguous range.
        self._sorted = sorted(t for t in vocab if t not in specials)
        self._normal = frozenset(self._sorted)
        self._all = sorted(vocab, key=vocab.__getitem__)

    # -- what to back off ----------------------------------------------------------------

    def extendable(self, token: str) -> bool:
        """Whether some other vocabulary token starts with `token` (a longer one may follow)."""
        i = bisect.bisect_right(self._sorted, token)
        return i < len(self._sorted) and self._sorted[i].startswith(token)

    def plan(self, tokens: list[str]) -> HealingPlan:
        """Back off the prompt's trailing partial tokens.

        The last token is backed off when a longer vocabulary token starts with it (the text
        after the cursor could have merged with it). Earlier tokens are backed off too when the
        tokenizer's own merges re-split them once a character follows (a long identifier
        `pref`+`ix` becoming `prefix`+`_`), up to MAX_BACKOFF_TOKENS. Newline tokens and
        special tokens are never backed off: a line break is a boundary the editor made.
        """
        if not tokens:
            return HealingPlan(tokens, "")
        count = self._unstable_tail(tokens)
        if count == 0 and self._backoffable(tokens[-1]) and self.extendable(tokens[-1]):
            count = 1
        removed = ""
        taken = 0
        for token in reversed(tokens[len(tokens) - count :]):
            if not self._backoffable(token) or len(removed) + len(token) > MAX_BACKOFF_CHARS:
                break
            removed = token + removed
            taken += 1
        if taken == 0:
            return HealingPlan(tokens, "")
        return HealingPlan(tokens[:-taken], removed, taken)

    def _backoffable(self, token: str) -> bool:
        return token in self._normal and "Ċ" not in token and "č" not in token

    def _unstable_tail(self, tokens: list[str]) -> int:
        """How many trailing tokens some probe continuation tokenizes differently."""
        tail = tokens[-(MAX_BACKOFF_TOKENS + 3) :]
        text = self._text(tail)
        if text is None or self._tokenizer.tokens(text) != tail:
            return 0  # the tail does not re-tokenize alone: no safe judgement, plain rule
        shortest = len(tail)
        for probe in _PROBES:
            probed = self._tokenizer.tokens(text + probe)
            same = 0
            for a, b in zip(tail, probed):
                if a != b:
                    break
                same += 1
            shortest = min(shortest, same)
        return min(len(tail) - shortest, MAX_BACKOFF_TOKENS)

    @staticmethod
    def _text(tokens: list[str]) -> str | None:
        try:
            return bytes(_BYTE_DECODER[c] for c in "".join(tokens)).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            return None

    # -- the constraint ------------------------------------------------------------------

    def allowed(self, rest: str) -> list[str]:
        """Tokens consistent with `rest`: they start with it, or are a prefix of it."""
        if not rest:
            return []
        lo = bisect.bisect_left(self._sorted, rest)
        hi = bisect.bisect_left(self._sorted, rest + "\U0010ffff")
        found = self._sorted[lo:hi]
        found.extend(rest[:n] for n in range(1, len(rest)) if rest[:n] in self._normal)
        return found

    @property
    def size(self) -> int:
        """Tokens in the vocabulary, special tokens included."""
        return len(self._all)

    def disallowed(self, rest: str) -> list[str]:
        """Every other token, special tokens included (what the constrained step suppresses)."""
        ok = set(self.allowed(rest))
        return [t for t in self._all if t not in ok]


@dataclass(frozen=True)
class HealingPolicy:
    """How the engine finds the constrained first token(s), per device.

    - `first_pass_alternatives`: K top first tokens tried (and continued, in one batch) in the
      first pass; the constrained choice is found there when it ranks within K.
    - `constrain_words_first`: for a backed-off identifier fragment (`self.fo|`), skip that
      first pass and start with the constrained step: the model's own first choice after the
      backed-off prompt rarely starts with the fragment, so a first pass would mostly be
      wasted.

    CPU: a batch of K continuations costs about K times one (the decoder steps dominate), so
    K = 1; whitespace and punctuation tails (indentation after Enter, `x = `, `foo.`) are
    reproduced by the model's first choice in most cases, identifier fragments are
    constrained first (bench/results/quality-healing.md; docs/performance.md).
    GPU: a batch of 8 costs about one, so the first pass looks at 8 alternatives and also
    yields the n-best suggestions.
    """

    first_pass_alternatives: int = 1
    constrain_words_first: bool = True

    @classmethod
    def for_device(cls, device: str) -> "HealingPolicy":
        if device == "cuda":
            return cls(first_pass_alternatives=8, constrain_words_first=False)
        return cls(first_pass_alternatives=1, constrain_words_first=True)

    def constrain_first(self, removed: str) -> bool:
        return self.constrain_words_first and is_word_fragment(removed)


def is_word_fragment(removed: str) -> bool:
    """Token text of (part of) an identifier or number, with or without its leading space."""
    body = removed.lstrip("Ġĉ")
    return bool(body) and (body[0].isalnum() or body[0] == "_")


def consistent(generated: str, removed: str) -> bool:
    """Whether token text `generated` can still become (or already covers) `removed`."""
    return generated.startswith(removed) or removed.startswith(generated)


def covers(generated: str, removed: str) -> bool:
    return generated.startswith(removed)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable character table (what byte-level BPE token strings use)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}


def token_text(tokens: list[str]) -> str | None:
    """The text of byte-level token strings (None when they end inside a character)."""
    return TokenHealer._text(tokens)
