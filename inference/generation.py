"""Plain data passed between the prompt builder, the engine and the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal


class Priority(IntEnum):
    """Where a request queues: lower runs first (`GenerationRequest.priority` holds one; an
    IntEnum is an int, so requests travel to a team server as plain numbers).

    Requests at BACKGROUND or above are background work: a more urgent request arriving while
    one runs stops it (within one decoding step) and it is queued again, so completions and
    hovers never wait for a background summary or a speculation to finish.
    """

    COMPLETION = 0  # a completion the editor waits for (and a speculation it now waits for)
    HOVER = 5  # an interactive hover summary
    BACKGROUND = 10  # prefetched summaries, speculation of the next line

    @classmethod
    def is_background(cls, priority: int) -> bool:
        return priority >= cls.BACKGROUND


Mode = Literal["decoder", "seq2seq", "infill", "summary", "causal"]
StopReason = Literal["eos", "stop_rule", "length", "cancelled", "empty"]


@dataclass(frozen=True)
class GenerationRequest:
    """One model call, in token strings (what CTranslate2 takes).

    - `encoder_tokens`: the source for encoder-decoder (T5) models; None for decoder-only
      (CodeGen) models.
    - `decoder_prefix`: tokens the decoder must be forced through before generating (for T5,
      after the start token, which CTranslate2 adds itself); for CodeGen, the prompt.
    - `stop_rule`: called with the text generated so far; True ends generation early (end of
      line, end of block). It runs on the engine thread after every token, so keep it cheap.
    - `end_tokens`: tokens that end generation besides the model's eos.
    - `heal_tokens`: the prompt's tail that token healing backed off (`inference/healing.py`):
      the generation must start by reproducing their text, which is then cut from `text`.
    - `alternatives`: how many distinct suggestions are wanted (n-best from one pass where the
      device makes that cheap; the first is always the greedy one).
    """

    mode: Mode
    encoder_tokens: list[str] | None
    decoder_prefix: list[str]
    max_new_tokens: int
    stop_rule: Callable[[str], bool] | None = None
    end_tokens: tuple[str, ...] = ()
    priority: int = Priority.COMPLETION  # lower runs first (Priority)
    heal_tokens: tuple[str, ...] = ()
    alternatives: int = 1


@dataclass
class GenerationResult:
    tokens: list[str]
    text: str
    stop_reason: StopReason
    model_ms: float
    prefix_tokens: int = 0
    extra: dict[str, float] = field(default_factory=dict)
    # Further distinct suggestions, best first (n-best), already cut like `text`.
    alternatives: list[str] = field(default_factory=list)
    # The text token healing made the model reproduce (cut from `text`); "" when not healed.
    healed: str = ""
