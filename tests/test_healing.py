"""Token healing: the back-off plan (table of cases), and the engine's constrained greedy
decoding equal to a transformers reference of the same decoding at real cursor positions."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, EncoderDecoderCache

from codet5_lsp.inference.engine import CompletionEngine
from codet5_lsp.inference.healing import HealingPolicy, TokenHealer, consistent
from codet5_lsp.inference.prompts import block_stop_rule, build_completion_request, line_stop_rule
from codet5_lsp.inference.tokenizer import CodeTokenizer
from tests.support.checkpoints import (
    CODEGEN_EOS,
    CODEGEN_VOCAB,
    CODEGEN_WORDS,
    codegen_decoder,
    codet5p_tensors,
    save_codet5p,
)

FROZEN = Path(__file__).resolve().parents[1] / "bench" / "data" / "summaries"
NEW_TOKENS = 24


def line_request(engine, prefix: str, *, heal: bool = True, alternatives: int = 1):
    """A decoder-mode line request at the end of `prefix`, healed unless told not to."""
    return build_completion_request(
        "decoder",
        prefix,
        "",
        engine.tokenizer,
        max_prefix_tokens=384,
        max_suffix_tokens=0,
        max_new_tokens=NEW_TOKENS,
        stop_rule=line_stop_rule,
        healer=engine.healer if heal else None,
        alternatives=alternatives,
    )


@pytest.fixture(scope="module")
def tokenizer(labmodel_float32) -> CodeTokenizer:
    return CodeTokenizer(labmodel_float32.tokenizer_file)


@pytest.fixture(scope="module")
def healer(tokenizer) -> TokenHealer:
    return TokenHealer(tokenizer)


# (text before the cursor, the token text backed off)
PLAN_CASES = [
    ("def add(a, b):\n    ", "ĠĠĠĠ"),  # after Enter + auto-indent (4 spaces)
    ("def add(a, b):\n        ", "ĠĠĠĠĠĠĠĠ"),  # deeper indentation
    ("if x:\n\t", "ĉ"),  # tab indentation
    ("x = ", "Ġ"),  # after a space
    ("self.fo", "fo"),  # half an identifier
    ("x = pref", "Ġpref"),  # a word with its space
    ("foo.", "."),  # after a dot: `.(`, `..` exist
    ("print(", "("),  # `()` exists
    ("a  ", "ĠĠ"),  # two spaces
    ("(\n", ""),  # a line break is the editor's boundary
    ("\n", ""),
    ("", ""),
]


@pytest.mark.parametrize("text,removed", PLAN_CASES)
def test_plan_backs_off_partial_tokens(healer, tokenizer, text, removed):
    tokens = tokenizer.tokens(text)
    plan = healer.plan(tokens)
    assert plan.removed == removed
    assert plan.kept + tokens[len(plan.kept) :] == tokens
    assert "".join(tokens[len(plan.kept) :]) == removed


def test_plan_backs_off_several_tokens_where_merges_change(healer, tokenizer):
    """A long identifier split in two re-merges once the next character comes: both go."""
    for word in ("codet5_lsp", "tokenization", "prefix_with_retr"):
        tokens = tokenizer.tokens("x = " + word)
        plan = healer.plan(tokens)
        probe = tokenizer.tokens("x = " + word + "a")
        kept = len(plan.kept)
        # what stays is also how the tokenizer splits the text with one more character
        assert probe[:kept] == tokens[:kept]
        assert plan.removed_tokens >= 1


def test_allowed_tokens_are_exactly_the_consistent_ones(healer, tokenizer):
    vocab = tokenizer.vocabulary()
    for rest in ("Ġre", "ĠĠĠĠ", "fo", ".", "ĉ"):
        allowed = set(healer.allowed(rest))
        expected = {t for t in vocab if t not in healer.special and consistent(t, rest)}
        assert allowed == expected
        assert set(healer.disallowed(rest)) == set(vocab) - expected


def test_policy_per_device():
    cpu, gpu = HealingPolicy.for_device("cpu"), HealingPolicy.for_device("cuda")
    assert cpu.first_pass_alternatives == 1 and gpu.first_pass_alternatives > 1
    assert cpu.constrain_first("fo") and cpu.constrain_first("Ġpref")
    assert not cpu.constrain_first("ĠĠĠĠ") and not cpu.constrain_first(".")
    assert not gpu.constrain_first("fo")


# ---------------------------------------------------------------------------- exactness


def healing_cases(per_kind: int, seed: int = 11) -> list[tuple[str, str]]:
    """(kind, text before the cursor) from frozen real code the labmodel never saw: mid-word,
    right after a space, after a line's indentation (where Enter + auto-indent leaves the
    cursor), right after a `.`."""
    rng = random.Random(seed)
    found: dict[str, list[str]] = {"mid_word": [], "after_space": [], "indent": [], "dot": []}
    for path in sorted(FROZEN.glob("*.py.txt")):
        text = path.read_text()
        offset = 0
        for line in text.splitlines(keepends=True):
            body = line.rstrip("\n")
            indent = len(body) - len(body.lstrip())
            if offset > 400 and body.strip():
                found["indent"].append(text[: offset + indent] if indent else "")
                words = [
                    i
                    for i in range(indent + 2, len(body) - 1)
                    if body[i - 1].isalnum() and body[i].isalnum()
                ]
                if words:
                    found["mid_word"].append(text[: offset + rng.choice(words)])
                spaces = [
                    i + 1
                    for i in range(indent, len(body) - 1)
                    if body[i] == " " and body[i + 1] != " " and body[i - 1] != " "
                ]
                if spaces:
                    found["after_space"].append(text[: offset + rng.choice(spaces)])
                dots = [i + 1 for i in range(indent, len(body) - 1) if body[i] == "."]
                if dots:
                    found["dot"].append(text[: offset + rng.choice(dots)])
            offset += len(line)
    cases = []
    for kind, prefixes in found.items():
        prefixes = [p for p in prefixes if p]
        rng.shuffle(prefixes)
        cases += [(kind, p) for p in prefixes[:per_kind]]
    return cases


CASES = healing_cases(15)


def reference_healed_text(model, tokenizer: CodeTokenizer, healer: TokenHealer, request) -> str:
    """Constrained greedy decoding in transformers, one step at a time: until the backed-off
    text is reproduced, the best token consistent with what is left of it; then the best
    token. Cut at eos, the stop rule or the token limit; the healed text removed."""
    ids = [tokenizer.token_to_id(t) for t in request.encoder_tokens]
    decoder = [0] + [tokenizer.token_to_id(t) for t in request.decoder_prefix]
    vocab_size = model.config.vocab_size
    rest = "".join(request.heal_tokens)
    generated: list[str] = []
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    with torch.no_grad():
        encoder_out = model.get_encoder()(input_ids=torch.tensor([ids]))
        step_input = torch.tensor([decoder])
        while len(generated) < request.max_new_tokens:
            out = model(
                encoder_outputs=encoder_out,
                decoder_input_ids=step_input,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[0, -1, :vocab_size].clone()
            if rest:
                mask = torch.full_like(logits, float("-inf"))
                allowed = [tokenizer.token_to_id(t) for t in healer.allowed(rest)]
                mask[[i for i in allowed if i is not None and i < vocab_size]] = 0
                logits = logits + mask
            next_id = int(torch.argmax(logits))
            token = tokenizer.id_to_token(next_id)
            if token == "</s>":
                break
            generated.append(token)
            if rest:
                rest = "" if token.startswith(rest) else rest[len(token) :]
            if (
                not rest
                and request.stop_rule is not None
                and request.stop_rule(tokenizer.decode_tokens(generated))
            ):
                break
            step_input = torch.tensor([[next_id]])
    text = tokenizer.decode_tokens(generated)
    removed = tokenizer.decode_tokens(list(request.heal_tokens))
    assert text.startswith(removed)
    return text[len(removed) :]


def test_cases_cover_every_kind():
    kinds = [k for k, _ in CASES]
    assert len(CASES) >= 50
    assert {kinds.count(k) for k in ("mid_word", "after_space", "indent", "dot")} == {15}


@pytest.mark.slow
def test_engine_healing_equals_the_transformers_reference(engine, reference, healer):
    """At 60 real positions, the float32 engine's healed suggestion equals the reference's,
    whichever of its paths (first pass, constrained steps) found it."""
    mismatches = []
    healed = 0
    for kind, prefix in CASES:
        request = line_request(engine, prefix)
        healed += bool(request.heal_tokens)
        ours = engine.generate(request)
        theirs = reference_healed_text(reference, engine.tokenizer, healer, request)
        if ours.text != theirs:
            mismatches.append((kind, prefix[-40:], ours.text, theirs))
    assert healed >= 50
    assert not mismatches, f"{len(mismatches)}/{len(CASES)} differ, first: {mismatches[0]}"


@pytest.mark.slow
def test_block_healing_equals_the_reference(engine, reference, healer):
    """After `def ...:` + Enter + indentation, the multi-line (block) request heals too."""
    prefixes = [p for k, p in CASES if k == "indent"][:6]
    for prefix in prefixes:
        indent = len(prefix) - len(prefix.rstrip(" \t"))
        request = build_completion_request(
            "decoder",
            prefix,
            "",
            engine.tokenizer,
            max_prefix_tokens=384,
            max_suffix_tokens=0,
            max_new_tokens=40,
            stop_rule=block_stop_rule(indent - 1),
            healer=engine.healer,
        )
        assert request.heal_tokens
        ours = engine.generate(request)
        assert ours.text == reference_healed_text(reference, engine.tokenizer, healer, request)
        assert not ours.text[:1].isspace()


@pytest.mark.parametrize("mode", ["seq2seq", "infill"])
@pytest.mark.slow
def test_encoder_side_healing_equals_the_reference(mode, engine, reference, healer):
    """In seq2seq and infill the code is the encoder's; the decoder must reproduce the tail."""
    for _kind, prefix in CASES[::12]:
        request = build_completion_request(
            mode,
            prefix,
            "\n",
            engine.tokenizer,
            max_prefix_tokens=384,
            max_suffix_tokens=16,
            max_new_tokens=12,
            stop_rule=line_stop_rule,
            healer=engine.healer,
        )
        if not request.heal_tokens:
            continue
        ours = engine.generate(request)
        if ours.stop_reason == "empty":
            continue  # the model would not reproduce the tail within MAX_CONSTRAINED_STEPS
        assert ours.text == reference_healed_text(reference, engine.tokenizer, healer, request)


@pytest.mark.slow
def test_every_path_of_the_policy_is_exact(engine, reference, healer):
    """The same cases under the GPU policy (8 alternatives first, no word shortcut) and a
    policy that always constrains first: the same text as the reference either way."""
    saved = engine.healing_policy
    try:
        for policy in (
            HealingPolicy(first_pass_alternatives=8, constrain_words_first=False),
            HealingPolicy(first_pass_alternatives=1, constrain_words_first=False),
        ):
            engine.healing_policy = policy
            for _kind, prefix in CASES[::10]:
                request = line_request(engine, prefix)
                ours = engine.generate(request)
                assert ours.text == reference_healed_text(
                    reference, engine.tokenizer, healer, request
                ), (policy, prefix[-40:])
    finally:
        engine.healing_policy = saved


@pytest.mark.slow
def test_alternatives_are_distinct_and_start_like_the_first(engine):
    prefix = "import os\n\n\ndef join_all(parts):\n    return os.path."
    request = line_request(engine, prefix, alternatives=3)
    result = engine.generate(request)
    texts = [result.text, *result.alternatives]
    assert len(texts) >= 2
    assert len(set(texts)) == len(texts)
    single = engine.generate(line_request(engine, prefix))
    assert single.text == result.text  # asking for alternatives never changes the best one


@pytest.mark.slow
def test_indentation_after_enter_gives_code_not_a_space(engine):
    """The issue's case: `def add(a, b):` + Enter + 4 spaces; without healing the labmodel
    suggests ` return ...` (9 spaces once accepted); with it the text starts with code."""
    prefix = "def add(a, b):\n    "
    plain = engine.generate(line_request(engine, prefix, heal=False))
    healed = engine.generate(line_request(engine, prefix))
    assert plain.text.startswith(" ")
    assert healed.text and not healed.text[0].isspace()


@pytest.mark.slow
def test_causal_mode_heals_through_the_generator(tmp_path):
    """The 2B/6B/16B path (ctranslate2.Generator): the first pass and the constrained steps
    there give what constrained greedy decoding in transformers gives (a tiny CodeGen whose
    word vocabulary `w0`..`w254` makes `w1` a partial token of `w10`..`w19`)."""
    from codet5_lsp.inference.models import resolve_model

    model = codegen_decoder()
    src = save_codet5p(
        tmp_path / "codet5p-tiny", model, codet5p_tensors(model), "safetensors-sharded"
    )
    files = resolve_model(str(src), quantization="float32", cache_dir=tmp_path / "cache")
    engine = CompletionEngine(files, device="cpu", compute_type="float32")
    try:
        checked = 0
        for policy, n in [
            (policy, n)
            for policy in (HealingPolicy.for_device("cpu"), HealingPolicy.for_device("cuda"))
            for n in (3, 5, 8, 12, 16, 20)
        ]:
            engine.healing_policy = policy
            rng = torch.Generator().manual_seed(n)
            prompt = torch.randint(20, CODEGEN_VOCAB - 1, (n,), generator=rng).tolist()
            prompt[-1] = 1  # `w1`: some longer token starts with it
            text = " ".join(CODEGEN_WORDS[i] for i in prompt)
            request = build_completion_request(
                "causal",
                text,
                "",
                engine.tokenizer,
                max_prefix_tokens=64,
                max_suffix_tokens=0,
                max_new_tokens=6,
                bos=None,
                eos=files.metadata.eos_token,
                sentinel=None,
                healer=engine.healer,
            )
            assert request.heal_tokens == ("w1",)
            ours = engine.generate(request)
            # reference: constrained first step, then greedy
            allowed = {engine.tokenizer.token_to_id(t) for t in engine.healer.allowed("w1")}
            ids = prompt[:-1]
            with torch.no_grad():
                for step in range(request.max_new_tokens):
                    logits = model(torch.tensor([ids])).logits[0, -1].clone()
                    if step == 0:
                        keep = torch.full_like(logits, float("-inf"))
                        keep[sorted(allowed)] = 0
                        logits += keep
                    nxt = int(torch.argmax(logits))
                    if nxt == CODEGEN_EOS:
                        break
                    ids.append(nxt)
            expected = [CODEGEN_WORDS[i] for i in ids[len(prompt) - 1 :]]
            assert ours.tokens == expected, (prompt, ours.tokens, expected)
            assert ours.tokens[0].startswith("w1")
            checked += 1
        assert checked == 12
    finally:
        engine.close()
