"""Time a 384-token decoder prefix + 32 new tokens: step-by-step, one pass, transformers.

    python docs/ctranslate2-t5-prefix/bench.py [--work /tmp/t5-prefix-bench] [--threads 2]

Models: the labmodel (trained, ../shared/models/labmodel) on a real code prefix, and a random
T5 shaped like Salesforce/codet5p-220m (d_model 768, 12+12 layers, 12 heads, d_ff 3072, vocab
32100) on random token ids. Each CTranslate2 model is converted twice: stock ("plain") and with
the prefix rewrite ("fixed"). Reported: median of 3 timed runs after one warm-up, in seconds.
One pass on "plain" is inexact (the bug); it is listed only to show what the rewrite costs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import ctranslate2
import torch
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from codet5_lsp.inference.conversion import convert_to_ctranslate2

REPO = Path(__file__).resolve().parents[2]
LABMODEL = REPO.parent / "shared/models/labmodel"
PREFIX, NEW = 384, 32


def median_time(fn, runs: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ct2_run(translator: ctranslate2.Translator, prefix: list[str], one_pass: bool) -> list[str]:
    extra = dict(return_alternatives=True, num_hypotheses=1) if one_pass else {}
    total = len(prefix) + NEW
    out = translator.translate_batch([["<s>", "</s>"]], target_prefix=[prefix], beam_size=1,
                                     max_decoding_length=total, min_decoding_length=total, **extra)
    return out[0].hypotheses[0][len(prefix):]


def hf_run(model: T5ForConditionalGeneration, prefix_ids: list[int]) -> list[int]:
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([[1, 2]]),
                             decoder_input_ids=torch.tensor([[0, *prefix_ids]]),
                             max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, num_beams=1,
                             past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()))
    return out[0, 1 + len(prefix_ids):].tolist()


def random_codet5p_220m(folder: Path) -> None:
    if (folder / "config.json").exists():
        return
    torch.manual_seed(0)
    config = T5Config(vocab_size=32100, d_model=768, d_kv=64, d_ff=3072, num_layers=12,
                      num_decoder_layers=12, num_heads=12, feed_forward_proj="relu",
                      tie_word_embeddings=True, decoder_start_token_id=0, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2, dropout_rate=0.0)
    T5ForConditionalGeneration(config).eval().save_pretrained(folder)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(LABMODEL / name, folder / name)


def code_prefix_ids(tokenizer) -> list[int]:
    source = "".join(p.read_text() for p in sorted((REPO / "inference").glob("*.py")))
    ids = tokenizer(source, add_special_tokens=False).input_ids
    return ids[len(ids) // 2: len(ids) // 2 + PREFIX]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/t5-prefix-bench"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(LABMODEL)
    random_codet5p_220m(args.work / "rand220m")
    cases = {
        "labmodel": (LABMODEL, code_prefix_ids(tokenizer)),
        "random codet5p-220m shape": (args.work / "rand220m",
                                      torch.randint(5, 32000, (PREFIX,),
                                                    generator=torch.Generator().manual_seed(0)).tolist()),
    }
    print(f"prefix {PREFIX} tokens + {NEW} new tokens, greedy, {args.threads} threads, "
          "median of 3 after a warm-up, seconds")
    for name, (hf_dir, prefix_ids) in cases.items():
        prefix = tokenizer.convert_ids_to_tokens(prefix_ids)
        model = T5ForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32).eval()
        reference = hf_run(model, prefix_ids)
        print(f"{name}: transformers fp32 generate {median_time(lambda: hf_run(model, prefix_ids)):.2f}")
        del model
        for quant in ("float32", "int8"):
            row = {}
            for variant in ("plain", "fixed"):
                out = args.work / f"{hf_dir.name}-{quant}-{variant}"
                if not out.exists():
                    convert_to_ctranslate2(hf_dir, out, quant, parallel_prefix=variant == "fixed")
                translator = ctranslate2.Translator(str(out), device="cpu",
                                                    intra_threads=args.threads)
                for one_pass in (False, True):
                    key = f"{'one-pass' if one_pass else 'step'} {variant}"
                    row[key] = median_time(lambda: ct2_run(translator, prefix, one_pass))
                    same = tokenizer.convert_tokens_to_ids(
                        ct2_run(translator, prefix, one_pass)) == reference
                    row[key + " =hf"] = same
            print(f"{name} ct2 {quant}: " + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
