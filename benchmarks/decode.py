"""Decode throughput: ponder's embedded backend vs raw ``model.generate`` on the same model object.

Both sides run the same chat prompts, greedy, ``--max-tokens`` new tokens, no stop sequences, in one
process, interleaved (alternating order each repetition) after a warm-up:

* ``ponder`` -- ``backend.generate`` / ``backend.generate_batch`` (chat template, left padding, stop and
  finish handling, token accounting).
* ``raw`` -- ``tokenizer.apply_chat_template`` + ``tokenizer(..., padding=True)`` + ``model.generate`` +
  ``batch_decode`` on the very same model and tokenizer.

Measurements: ``single`` (one prompt) and ``batch8`` (8 prompts in one call, aggregate tok/s). Tokens are
the generated tokens before EOS, counted the same way for both. Output: JSON lines -- the cold load time
(a fresh interpreter: ``import torch, transformers, ponder`` timed apart, then the first and a second
``from_settings`` of ``embedded`` from the converted cache), one line per
(measurement, implementation) with the median tok/s, and one ratio line per measurement (ponder / raw,
medians, plus the median of the per-repetition ratios; goal >= 0.9).

Usage::

    python benchmarks/decode.py [--max-tokens 64] [--reps 3] [--device cpu] [--cache-dir DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GOAL = 0.9
TOPICS = ["a lighthouse keeper", "a robot chef", "a lost dragon", "a time-travelling cat",
          "a desert caravan", "an underwater city", "a clockwork owl", "a mountain village"]
COLD_LOAD = """
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from ponder.config import load_settings
from ponder.models.spec import parse_spec
from ponder.models.embedded import TransformersBackend
t1 = time.perf_counter()
s = load_settings(device=sys.argv[1], cache_dir=sys.argv[2])
b = TransformersBackend.from_settings(parse_spec("embedded"), s)
t2 = time.perf_counter()
again = TransformersBackend.from_settings(parse_spec("embedded"), s)
print(json.dumps({"import_s": t1 - t0, "first_load_s": t2 - t1, "second_load_s": time.perf_counter() - t2,
                  "from_cache": b.load_info["from_cache"], "device": b.load_info["device"],
                  "dtype": b.load_info["dtype"]}))
"""

def conversation(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}."}]


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "decode", **fields}), flush=True)


def raw_generate(model: Any, tok: Any, convs: list[list[dict[str, str]]], max_tokens: int) -> int:
    """The plain transformers path; returns the number of generated tokens before EOS."""
    import torch

    tok.padding_side = "left"
    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in convs]
    enc = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    tok.batch_decode(new, skip_special_tokens=True)
    eos = tok.eos_token_id
    return sum(row.index(eos) if eos in row else len(row) for row in new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: settings)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from ponder.config import load_settings
    from ponder.models.base import GenerationParams
    from ponder.models.embedded import TransformersBackend
    from ponder.models.spec import parse_spec

    settings = load_settings(device=args.device, cache_dir=args.cache_dir)
    backend = TransformersBackend.from_settings(parse_spec("embedded"), settings)
    if not backend.load_info["from_cache"]:
        emit(metric="convert_load_s", value=backend.load_info["load_seconds"])
    cold = subprocess.run([sys.executable, "-c", COLD_LOAD, args.device, str(settings.cache_dir)],
                          capture_output=True, text=True, check=True)
    info = json.loads(cold.stdout.strip().splitlines()[-1])
    emit(metric="cold_load_s", value=round(info["first_load_s"], 3), imports_s=round(info["import_s"], 3),
         second_load_s=round(info["second_load_s"], 3), from_cache=info["from_cache"], device=info["device"],
         dtype=info["dtype"])

    model, tok = backend.model, backend.tokenizer  # the same objects for both sides
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.0)
    cases = {"single": [conversation(0)], "batch8": [conversation(i) for i in range(8)]}

    def ponder_run(convs: list[list[dict[str, str]]]) -> int:
        results = backend.generate_batch(convs, params)  # type: ignore[arg-type]
        return sum(c.completion_tokens for r in results for c in r)

    impls = {"ponder": ponder_run, "raw": lambda convs: raw_generate(model, tok, convs, args.max_tokens)}
    for name, convs in cases.items():
        for fn in impls.values():  # warm-up
            fn(convs[:1])
        rates: dict[str, list[float]] = {k: [] for k in impls}
        tokens: dict[str, int] = {}
        for rep in range(args.reps):
            order = list(impls) if rep % 2 == 0 else list(reversed(impls))
            for impl in order:
                start = time.perf_counter()
                tokens[impl] = impls[impl](convs)
                rates[impl].append(tokens[impl] / (time.perf_counter() - start))
        for impl in impls:
            emit(metric=f"{name}_tok_s", impl=impl, value=round(statistics.median(rates[impl]), 2),
                 runs=[round(r, 2) for r in rates[impl]], tokens_per_run=tokens[impl], rows=len(convs),
                 max_tokens=args.max_tokens, device=backend.load_info["device"],
                 threads=torch.get_num_threads())
        ratio = statistics.median(rates["ponder"]) / statistics.median(rates["raw"])
        paired = statistics.median(p / r for p, r in zip(rates["ponder"], rates["raw"], strict=True))
        emit(metric=f"{name}_ratio", value=round(ratio, 3), paired_median=round(paired, 3), goal=GOAL,
             goal_met=ratio >= GOAL, same_tokens=tokens["ponder"] == tokens["raw"])


if __name__ == "__main__":
    main()
