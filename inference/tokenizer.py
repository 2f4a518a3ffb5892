"""Tokenizer used at serving time: the `tokenizers` library on a saved `tokenizer.json`.

Serving must not need transformers or torch, so conversion saves the checkpoint's fast
tokenizer as `tokenizer.json` next to the CTranslate2 model, and this wrapper loads it.
Tests check it encodes exactly like transformers' tokenizer for the same checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import tokenizers


class TokenizerError(RuntimeError):
    """The tokenizer file is missing or unreadable; the message names the path."""


class CodeTokenizer:
    """Text <-> token strings (CTranslate2 takes token strings, not ids)."""

    def __init__(self, path: Path):
        path = Path(path)
        if not path.is_file():
            raise TokenizerError(f"tokenizer file not found: {path}")
        try:
            self._tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise TokenizerError(f"cannot read tokenizer {path}: {exc}") from exc
        self.path = path

    def tokens(self, text: str) -> list[str]:
        """Token strings of `text`, without the special tokens a template would add."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def ids(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def decode_tokens(self, tokens: list[str]) -> str:
        """Text of generated token strings; special tokens (sentinels, eos) are dropped."""
        ids = [i for i in (self._tok.token_to_id(t) for t in tokens) if i is not None]
        return self._tok.decode(ids, skip_special_tokens=True)

    def vocabulary(self) -> dict[str, int]:
        """Token string -> id, added (special) tokens included."""
        return self._tok.get_vocab(with_added_tokens=True)

    def special_tokens(self) -> set[str]:
        """Tokens that never stand for text (`<s>`, `</s>`, `<pad>`, sentinels, ...)."""
        return {t.content for t in self._tok.get_added_tokens_decoder().values() if t.special}

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()
