"""Caption stage benchmark: local-backend throughput at batch size 1 vs 8, and the cost of constrained decoding.

    .venv/bin/python bench/bench_caption.py [--clips 16] [--frames 8] [--size 112] [--threads 2]
        [--max-new-tokens 0] [--lengths 64,256] [--overhead-clips 8] [--repeats 3] [--model DIR] [--json OUT]

Builds the tiny random-weight Qwen2.5-VL (`annotate.tiny_vlm`) unless --model points at one, makes
--clips requests the way the caption stage does (phase_caption_v1 prompt, --frames random frames of
--size px per clip at 2 fps, a few timed words, the clip's caption schema with max_phases 4,
max_base_chars 120, max_text_chars 60), loads one `LocalVlm` on the CPU and measures, in one run:

  compile     one-time grammar cost: the first schema (tokenizer info + compiler + compile), then
              one more schema (compile only; clips of another rounded-up length get their own)
  throughput  `LocalVlm.generate` on the same clips, constrained, temperature 1.0, at batch size 1
              and 8: clips/s and generated tokens/s (end token included, padding not), and bs8/bs1.
              max_new_tokens is the schema's token budget unless --max-new-tokens is given; the random
              model rambles, so the lengths vary and a batch runs until its longest request ends.
  overhead    constrained against unconstrained generation of exactly the same length L: the
              constrained side decodes under the caption schema with a base caption that must be at
              least 4 L characters long (no token writes more than 4, so the JSON cannot close before
              L tokens) and max_new_tokens = L; the free side uses min_new_tokens = max_new_tokens = L.
              `model.generate` is timed on prepared inputs (processor outside the timing), on
              --overhead-clips clips, at batch size 1 and 8; every output is checked to hold exactly L
              new tokens. Prints seconds per decoding step (one token per request of the batch; whole
              call / L, prefill included), the marginal seconds per step between the two lengths
              (prefill and per-call setup cancel out), and the ratios constrained / free.

Each figure is the fastest of --repeats timed runs (other work on the machine only slows a run
down), the compared variants alternating run by run; the load average is printed at the start and
the end.

Random weights: the captions are nonsense, the work (vision tower, prefill, decode, token masks) is real.
No assertion on speed. On a GPU machine pass --device cuda.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "configs/annotate/prompts/phase_caption_v1.yaml"
SAMPLE_FPS = 2.0
STRING_CHARS = '[^\\x00-\\x1f"\\\\]'  # what caption_schema allows in a string
MAX_REPEAT = 128  # xgrammar 0.2.8 fails to compile a bounded repeat above 128 (mlc-ai/xgrammar#863)


def make_requests(count: int, frames: int, size: int, seed: int = 0) -> list[tuple[list[dict[str, Any]], float]]:
    """(messages, duration_s) per clip: random frames at SAMPLE_FPS, a few timed words."""
    from annotate.prompts import PromptTemplate

    template = PromptTemplate.load(PROMPT)
    rng = np.random.default_rng(seed)
    requests = []
    for _ in range(count):
        duration = float(rng.uniform(frames / SAMPLE_FPS - 0.5, frames / SAMPLE_FPS + 1.5))
        images = [(i / SAMPLE_FPS, rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for i in range(frames)]
        starts = np.sort(rng.uniform(0, duration - 0.4, 6))
        words = [{"word": w, "start_s": float(s), "end_s": float(s) + 0.3}
                 for w, s in zip(("so", "today", "we", "look", "at", "this"), starts)]
        messages = template.messages(frames=images, duration_s=duration, sample_fps=SAMPLE_FPS, words=words,
                                     face_bbox=[0.3, 0.2, 0.7, 0.6], min_phase_s=0.5, max_phases=4)
        requests.append((messages, duration))
    return requests


def forced_length_schema(duration_s: float, limits, tokens: int) -> dict[str, Any]:
    """The caption schema with a base caption of at least 4 * tokens characters (so >= `tokens` tokens)."""
    from annotate.caption_schema import caption_schema

    schema = caption_schema(duration_s, limits)
    chunks = math.ceil(4 * tokens / MAX_REPEAT)
    schema["properties"]["base"] = {"type": "string",
                                    "pattern": f"^(?:{STRING_CHARS}{{{MAX_REPEAT}}}){{{chunks}}}{STRING_CHARS}{{0,{MAX_REPEAT}}}$"}
    return schema


class TokenCounter:
    """Wraps `vlm.model.generate` to count generated tokens (padding excluded)."""

    def __init__(self, vlm) -> None:
        self.pad = vlm.processor.tokenizer.pad_token_id
        self.tokens = 0
        self._generate = vlm.model.generate
        vlm.model.generate = self

    def __call__(self, **kwargs):
        ids = self._generate(**kwargs)
        self.tokens += int((ids[:, kwargs["input_ids"].shape[1]:] != self.pad).sum())
        return ids


def bench_compile(vlm, schemas: list[dict[str, Any]]) -> dict[str, float]:
    t = time.perf_counter()
    vlm._grammar(schemas[0])
    first = time.perf_counter() - t
    t = time.perf_counter()
    vlm._grammar(schemas[1])
    second = time.perf_counter() - t
    t = time.perf_counter()
    vlm._grammar(schemas[0])
    cached = time.perf_counter() - t
    print(f"\n1. grammar compile: first schema {first * 1e3:.0f} ms (tokenizer info + compiler + compile), "
          f"another schema {second * 1e3:.0f} ms, cached {cached * 1e6:.0f} us")
    return {"first_s": first, "another_s": second, "cached_s": cached}


def bench_throughput(vlm, requests, schemas, max_new_tokens: int, repeats: int) -> dict[str, Any]:
    from annotate.vlm_local import Sampling

    counter = TokenCounter(vlm)
    sampling = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=max_new_tokens, seed=0)
    messages = [m for m, _ in requests]
    results: dict[str, Any] = {}
    runs: dict[int, list[tuple[float, int, int]]] = {1: [], 8: []}
    for bs in runs:  # warm-up
        vlm.batch_size = bs
        vlm.generate(messages[:bs], schemas[:bs], sampling)
    for _ in range(repeats):  # alternate the batch sizes, so that a change in machine load hits both
        for bs in runs:
            vlm.batch_size = bs
            counter.tokens = 0
            t = time.perf_counter()
            outputs = vlm.generate(messages, schemas, sampling)
            runs[bs].append((time.perf_counter() - t, counter.tokens, sum(_parses(o) for o in outputs)))
    for bs, timed in runs.items():
        seconds, tokens, valid = min(timed)  # the fastest run: other load only slows a run down
        results[f"bs{bs}"] = {"seconds": seconds, "tokens": tokens, "clips_per_s": len(messages) / seconds,
                              "tokens_per_s": tokens / seconds, "valid_json": valid, "runs_s": [r[0] for r in timed]}
    vlm.model.generate = counter._generate
    print(f"\n2. throughput: LocalVlm.generate, constrained, {len(messages)} clips, temperature 1.0, "
          f"max_new_tokens {max_new_tokens}")
    print(f"{'batch':>5} {'s':>8} {'clips/s':>8} {'tokens':>7} {'tok/clip':>9} {'tokens/s':>9} {'valid JSON':>11}  runs s")
    for bs in (1, 8):
        r = results[f"bs{bs}"]
        print(f"{bs:>5} {r['seconds']:>8.2f} {r['clips_per_s']:>8.2f} {r['tokens']:>7} {r['tokens'] / len(messages):>9.1f} "
              f"{r['tokens_per_s']:>9.1f} {r['valid_json']:>7}/{len(messages)}    {[round(x, 2) for x in r['runs_s']]}")
    b1, b8 = results["bs1"], results["bs8"]
    results["ratio_clips"] = b8["clips_per_s"] / b1["clips_per_s"]
    results["ratio_tokens"] = b8["tokens_per_s"] / b1["tokens_per_s"]
    print(f"bs8 / bs1: clips/s {results['ratio_clips']:.2f}x, tokens/s {results['ratio_tokens']:.2f}x")
    return results


def _parses(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def bench_overhead(vlm, requests, limits, lengths: list[int], clips: int, repeats: int) -> dict[str, Any]:
    import torch
    from xgrammar.contrib.hf import LogitsProcessor

    pad, eos = vlm.processor.tokenizer.pad_token_id, vlm.processor.tokenizer.eos_token_id
    requests = requests[:clips]
    schemas = {length: [forced_length_schema(d, limits, length) for _, d in requests] for length in lengths}
    t = time.perf_counter()
    for length in lengths:
        for schema in schemas[length]:
            vlm._grammar(schema)
    compile_s = time.perf_counter() - t

    def run(batches, length: int, constrained: bool) -> tuple[float, list[int]]:
        counts, seconds = [], 0.0
        for start, inputs in batches:
            kwargs: dict[str, Any] = {"max_new_tokens": length, "do_sample": True, "temperature": 1.0, "top_p": 0.9}
            if constrained:
                kwargs["logits_processor"] = [LogitsProcessor([vlm._grammar(s) for s in schemas[length][start : start + len(inputs["input_ids"])]])]
            else:
                kwargs["min_new_tokens"] = length
            torch.manual_seed(start)
            t = time.perf_counter()
            with torch.inference_mode():
                ids = vlm.model.generate(**inputs, **kwargs)
            seconds += time.perf_counter() - t
            new = ids[:, inputs["input_ids"].shape[1]:]
            counts += [int(((row != pad) & (row != eos)).sum()) for row in new]
        return seconds, counts

    results: dict[str, Any] = {"compile_s": compile_s}
    checks = []
    for bs in (1, 8):
        batches = [(s, vlm._inputs([m for m, _ in requests[s : s + bs]])) for s in range(0, len(requests), bs)]
        run(batches[:1], lengths[0], True), run(batches[:1], lengths[0], False)  # warm-up
        for length in lengths:
            times: dict[str, list[float]] = {"constrained": [], "free": []}
            for _ in range(repeats):  # alternate the two sides
                for side in times:
                    seconds, counts = run(batches, length, side == "constrained")
                    times[side].append(seconds)
                    if any(c != length for c in counts):
                        checks.append(f"bs{bs} L{length} {side}: new tokens {min(counts)}..{max(counts)}, not {length}")
            results[f"bs{bs}_L{length}"] = {side: min(v) for side, v in times.items()}
            results[f"bs{bs}_L{length}_runs_s"] = times
    print(f"\n3. constrained vs free generation of the same length, {len(requests)} clips, model.generate only "
          f"(forced-length schemas compiled in {compile_s:.2f} s)")
    print(f"{'batch':>5} {'L':>5} {'constr. s':>10} {'free s':>8} {'constr. ms/step':>16} {'free ms/step':>13} {'ratio':>6}")
    for bs in (1, 8):
        steps = len(range(0, len(requests), bs))  # generate calls; per token = per decoding step of a call
        for length in lengths:
            r = results[f"bs{bs}_L{length}"]
            c, f = r["constrained"] / steps / length, r["free"] / steps / length
            print(f"{bs:>5} {length:>5} {r['constrained']:>10.2f} {r['free']:>8.2f} {c * 1e3:>16.2f} {f * 1e3:>13.2f} "
                  f"{r['constrained'] / r['free']:>5.2f}x")
        if len(lengths) > 1:
            lo, hi = results[f"bs{bs}_L{lengths[0]}"], results[f"bs{bs}_L{lengths[-1]}"]
            span = (lengths[-1] - lengths[0]) * steps
            c, f = (hi["constrained"] - lo["constrained"]) / span, (hi["free"] - lo["free"]) / span
            results[f"bs{bs}_marginal"] = {"constrained_s_per_step": c, "free_s_per_step": f, "ratio": c / f}
            print(f"{bs:>5} {f'{lengths[0]}->{lengths[-1]}':>11} marginal per step: constrained {c * 1e3:.2f} ms, "
                  f"free {f * 1e3:.2f} ms, ratio {c / f:.2f}x")
    print("length check: " + ("every output has exactly L new tokens" if not checks else "; ".join(checks)))
    results["length_check"] = checks
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--size", type=int, default=112, help="frame side, pixels")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--max-new-tokens", type=int, default=0, help="throughput cap (0: the schema's token budget)")
    parser.add_argument("--lengths", default="64,256", help="forced generation lengths for the overhead section")
    parser.add_argument("--overhead-clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (the fastest counts)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="a Qwen2.5-VL-class model folder (default: build the tiny one)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from annotate.caption_schema import CaptionLimits, caption_schema, token_budget
    from annotate.vlm_local import LocalVlm

    tmp = tempfile.TemporaryDirectory(prefix="bench-caption-")
    model = args.model
    if model is None:
        from annotate.tiny_vlm import build_tiny_vlm

        model = str(build_tiny_vlm(Path(tmp.name) / "vlm", seed=0))
    limits = CaptionLimits(max_phases=4, max_base_chars=120, max_text_chars=60)
    max_new_tokens = args.max_new_tokens or token_budget(limits)
    lengths = [int(x) for x in args.lengths.split(",") if x]

    t = time.perf_counter()
    vlm = LocalVlm(model, device=args.device, batch_size=1)
    load_s = time.perf_counter() - t
    requests = make_requests(max(args.clips, args.overhead_clips), args.frames, args.size)
    prompt_tokens = int(vlm._inputs([requests[0][0]])["input_ids"].shape[1])
    schemas = [caption_schema(d, limits) for _, d in requests]
    print(f"model {model if args.model else 'tiny random Qwen2.5-VL'}, load {load_s:.1f} s, device {args.device}, "
          f"torch threads {torch.get_num_threads()}; {args.frames} frames of {args.size}x{args.size} per clip, "
          f"{prompt_tokens} prompt tokens; {len({json.dumps(s, sort_keys=True) for s in schemas})} distinct schemas; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    results: dict[str, Any] = {"threads": torch.get_num_threads(), "prompt_tokens": prompt_tokens, "load_s": load_s}
    results["compile"] = bench_compile(vlm, [schemas[0], caption_schema(requests[0][1] + 1, limits)])
    for schema in schemas:  # compile outside the timed runs
        vlm._grammar(schema)
    results["throughput"] = bench_throughput(vlm, requests[: args.clips], schemas[: args.clips], max_new_tokens,
                                             args.repeats)
    results["overhead"] = bench_overhead(vlm, requests, limits, lengths, args.overhead_clips, args.repeats)
    results["load_average"] = os.getloadavg()[0]
    print(f"\nload average at the end {results['load_average']:.2f} (other work on the machine makes the timings noisy)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
