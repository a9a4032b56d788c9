"""Figure 3 of the generator issue: a mixed-adapter batch against the same requests one by one.

Four requests on four different adapters (a 20-token soft prompt, a 20-token prefix and two
LoRA r8 adapters on all seven projections) over the same 5-passage prompt shape (four different
questions), each decoding ``--tokens`` tokens (end of sequence suppressed so both sides do the
same work). Side by side in one run, interleaved: ``generate_many`` of the four as one batch,
and the four ``generate`` calls one after another. Reported: requests/s and generated tokens/s
of each, and their ratio; also the greedy outputs' agreement: per request, the tokens the batch
and the lone run share before they first differ (a batch pads rows and runs other matrix
shapes, so a near tie between two tokens can go the other way; the tests check the batch
against lone rows on the tiny model).

Also one decode step of 4 rows on 4 different LoRA adapters against one row's step on one of
them (per-row LoRA, :mod:`ragtune.generate.lora`), from the same runs' decode times. Goals:
the 4-row step <= 1.5x one row's; the mixed batch end to end >= 2x one by one. The base model is
the default (grounded, int8 on the CPU).

Rerun (from the repository root)::

    .venv/bin/python benchmarks/mixed_batch.py --tokens 48 --repeats 3 --threads 2

Results go to ``benchmarks/out/mixed_batch.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _generation

if TYPE_CHECKING:
    from ragtune.types import Generation

QUESTIONS = [
    "How many days do I have to return an opened kettle, and is there a fee?",
    "How long is the blender motor covered?",
    "What temperature should I use for green tea?",
    "When is the Leeds store open on Sunday?",
]


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quantize", default="auto", help="auto | none | int8 | int4")
    args = p.parse_args(argv)
    _generation.set_threads(args.threads)

    from ragtune.generate import DecodeSettings, GenerationRequest, load_base_model

    work = Path(tempfile.mkdtemp(prefix="ragtune-mixed-"))
    adapters = [("prompt", "prompt"), ("prefix", "prefix"), ("lora-a", "lora"), ("lora-b", "lora")]
    loras = ["lora-a", "lora-b", "lora-c", "lora-d"]
    registry = _generation.make_adapters(work, [*adapters, ("lora-c", "lora"), ("lora-d", "lora")])
    base = load_base_model(device="cpu", quantize=args.quantize)
    generator, _pool = _generation.make_generator(registry, base=base)
    settings = DecodeSettings(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    passages = _generation.passages()
    requests = [
        GenerationRequest(q, passages, _generation.bench(name), settings)
        for q, (name, _kind) in zip(QUESTIONS, adapters, strict=True)
    ]
    generator.generate_many(requests)  # warm-up: loads the adapters, pages in the weights
    results: dict[str, Any] = {
        "figure": "mixed_batch",
        "machine": _common.machine_info(),
        "threads": args.threads,
        "quantize": base.quantize,
        "new_tokens": args.tokens,
        "adapters": [kind for _n, kind in adapters],
        "runs": {"mixed batch": [], "one by one": []},
        "conditions": [],
    }
    agree = [args.tokens] * len(requests)  # per request: tokens equal before the first difference
    for rep in range(args.repeats):
        results["conditions"].append(_common.wait_for_quiet(args.max_wait, label=f"repeat {rep}"))
        sides = ["mixed batch", "one by one"] if rep % 2 == 0 else ["one by one", "mixed batch"]
        outputs = {}
        for side in sides:
            started = time.perf_counter()
            if side == "mixed batch":
                gens = generator.generate_many(requests)
            else:
                gens = [generator.generate_many([r])[0] for r in requests]
            seconds = time.perf_counter() - started
            tokens = sum(g.output_tokens for g in gens)
            outputs[side] = [g.token_ids for g in gens]
            results["runs"][side].append(
                {
                    "seconds": round(seconds, 3),
                    "tokens": tokens,
                    "prompt_tokens": [g.prompt_tokens for g in gens],
                }
            )
            print(
                f"  repeat {rep} {side}: {seconds:.1f}s, {tokens / seconds:.2f} tok/s", flush=True
            )
        for i, (a, b) in enumerate(zip(outputs["mixed batch"], outputs["one by one"], strict=True)):
            same = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
            agree[i] = min(agree[i], same)

    # One decode step: 4 rows on 4 LoRA adapters against 1 row on one (seconds per token after
    # the first, the slowest row of the batch).
    def step_seconds(gens: Sequence[Generation]) -> float:
        return max(g.decode_seconds / max(g.output_tokens - 1, 1) for g in gens)

    lora_requests = [
        GenerationRequest(q, passages, _generation.bench(name), settings)
        for q, name in zip(QUESTIONS, loras, strict=True)
    ]
    generator.generate_many(lora_requests)
    one_row, four_rows = [], []
    for _rep in range(args.repeats):
        one_row.append(step_seconds(generator.generate_many(lora_requests[:1])))
        four_rows.append(step_seconds(generator.generate_many(lora_requests)))
    step = {
        "one_row_ms": round(1000 * _common.median(one_row), 2),
        "four_rows_four_lora_ms": round(1000 * _common.median(four_rows), 2),
    }
    step["ratio"] = round(step["four_rows_four_lora_ms"] / step["one_row_ms"], 3)
    results["lora_decode_step"] = step

    summary = {}
    for side, runs in results["runs"].items():
        seconds = _common.median([r["seconds"] for r in runs])
        summary[side] = {
            "median_seconds": round(seconds, 3),
            "requests_per_s": round(len(requests) / seconds, 3),
            "tokens_per_s": round(runs[0]["tokens"] / seconds, 2),
        }
    ratio = summary["one by one"]["median_seconds"] / summary["mixed batch"]["median_seconds"]
    results["summary"] = summary
    results["throughput_ratio"] = round(ratio, 3)
    results["greedy_tokens_equal_before_first_difference"] = agree
    results["goals"] = {
        "step_ratio": step["ratio"],
        "step_ratio_met": step["ratio"] <= 1.5,
        "throughput_ratio": round(ratio, 3),
        "throughput_ratio_met": ratio >= 2.0,
    }
    path = _common.write_results(args.out, "mixed_batch", results)
    print(
        f"\n### Mixed-adapter batch (4 requests: prompt, prefix, LoRA, LoRA; {args.tokens} tokens each; median of {args.repeats})\n"
    )
    print(
        _common.markdown_table(
            ["run", "seconds", "requests/s", "tokens/s"],
            [
                [side, s["median_seconds"], s["requests_per_s"], s["tokens_per_s"]]
                for side, s in summary.items()
            ],
        )
    )
    print(
        f"\nThroughput ratio mixed / one by one: {ratio:.2f}x (goal >= 2); greedy tokens equal "
        f"before the first difference, per request (of {args.tokens}): {agree}"
    )
    print(
        f"Decode step, 4 rows on 4 LoRA adapters: {step['four_rows_four_lora_ms']} ms against "
        f"{step['one_row_ms']} ms for one row: {step['ratio']}x (goal <= 1.5)"
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
