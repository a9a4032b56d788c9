"""Figure 1 of the generator issue: decode tokens/s per adapter kind against the memory bound.

The embedded SmolLM2-135M-Instruct in float32 decodes a fixed number of tokens (end of sequence
suppressed) after a 5-passage grounded prompt, with: no adapter, a 20-token soft prompt, a
20-token prefix, LoRA r8 on all seven projections unmerged (served through PEFT's
``adapter_names``, as a mixed batch needs), and the same LoRA merged into the weights. Also a
plain ``model.generate`` over the same prompt for reference (tokens/s including its prefill).

The memory-bandwidth bound: decoding one token reads every weight once, so tokens/s cannot
exceed (bandwidth) / (weight bytes). The bandwidth is measured here with a 512 MB numpy copy,
and a copy can be counted two ways; both are reported. The STREAM convention counts bytes read
plus bytes written (the memory traffic: the strict bound); counting the bytes copied gives half
that (the lenient bound). Goal: >= 60% of the bound for float32 on 2 cores. Time to first
token is the prefill of the 5-passage prompt.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/decode_speed.py --tokens 64 --repeats 3

Results go to ``benchmarks/out/decode_speed.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _generation

GOAL_SHARE = 0.60


def copy_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes per second moved by a large array copy (read + write), best of ``repeats``."""
    import numpy as np

    src = np.ones(megabytes * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return 2 * src.nbytes / best


def weight_bytes(model: Any) -> int:
    """Bytes of distinct parameter tensors (a tied embedding counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=64, help="new tokens per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    _generation.set_threads(args.threads)

    from peft import PeftModel

    from ragtune.generate import DecodeSettings, load_base_model
    from ragtune.types import NO_ADAPTER

    work = Path(tempfile.mkdtemp(prefix="ragtune-decode-"))
    registry = _generation.make_adapters(
        work, [("prompt", "prompt"), ("prefix", "prefix"), ("lora", "lora")]
    )
    base = load_base_model(device="cpu")
    generator, _pool = _generation.make_generator(registry, base=base)
    for name in ("prompt", "prefix", "lora"):
        generator.load_adapter(_generation.bench(name))
    merged_base = load_base_model(device="cpu")
    lora_folder = registry.resolve("bench/lora").folder
    merged_model = (
        PeftModel.from_pretrained(merged_base.model, str(lora_folder)).merge_and_unload().eval()
    )
    merged, _ = _generation.make_generator(registry, base=replace(merged_base, model=merged_model))
    settings = DecodeSettings(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    passages = _generation.passages()
    runs: dict[str, Any] = {
        "no adapter": lambda: generator.generate(
            _generation.QUESTION, passages, adapter=NO_ADAPTER, settings=settings
        ),
        "prompt (20 tokens)": lambda: generator.generate(
            _generation.QUESTION, passages, adapter=_generation.bench("prompt"), settings=settings
        ),
        "prefix (20 tokens)": lambda: generator.generate(
            _generation.QUESTION, passages, adapter=_generation.bench("prefix"), settings=settings
        ),
        "LoRA r8, unmerged": lambda: generator.generate(
            _generation.QUESTION, passages, adapter=_generation.bench("lora"), settings=settings
        ),
        "LoRA r8, merged": lambda: merged.generate(
            _generation.QUESTION, passages, adapter=NO_ADAPTER, settings=settings
        ),
    }
    prompt_ids = list(
        generator.prompt(_generation.QUESTION, passages, reserve=args.tokens).token_ids
    )

    import torch

    plain = load_base_model(device="cpu")

    def plain_generate() -> dict[str, float]:
        ids = torch.tensor([prompt_ids])
        started = time.perf_counter()
        with torch.inference_mode():
            out = plain.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
            )
        seconds = time.perf_counter() - started
        return {"tokens": int(out.shape[1] - ids.shape[1]), "seconds": seconds}

    bandwidth = copy_bandwidth()
    weights = weight_bytes(base.model)
    bound = bandwidth / weights  # strict: STREAM's read + write traffic
    lenient = bound / 2  # bytes copied per second
    results: dict[str, Any] = {
        "figure": "decode_speed",
        "machine": _common.machine_info(),
        "threads": args.threads,
        "new_tokens": args.tokens,
        "prompt_tokens": len(prompt_ids),
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 2),
        "weight_bytes": weights,
        "bound_tokens_per_s": round(bound, 2),
        "lenient_bound_tokens_per_s": round(lenient, 2),
        "runs": {name: [] for name in [*runs, "plain generate()"]},
        "conditions": [],
    }
    for run in runs.values():  # warm-up: first calls allocate and page in
        run()
    names = list(runs)
    for rep in range(args.repeats):
        results["conditions"].append(_common.wait_for_quiet(args.max_wait, label=f"repeat {rep}"))
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            g = runs[name]()
            results["runs"][name].append(
                {
                    "prefill_s": round(g.prefill_seconds, 4),
                    "decode_s": round(g.decode_seconds, 4),
                    "tokens": g.output_tokens,
                    "tokens_per_s": round(g.tokens_per_second, 3),
                }
            )
            print(
                f"  repeat {rep} {name}: {g.tokens_per_second:.2f} tok/s, prefill {g.prefill_seconds * 1000:.0f} ms",
                flush=True,
            )
        plain_run = plain_generate()
        results["runs"]["plain generate()"].append(plain_run)
        print(
            f"  repeat {rep} plain generate(): {plain_run['tokens'] / plain_run['seconds']:.2f} tok/s incl. prefill",
            flush=True,
        )

    summary = {}
    for name, rs in results["runs"].items():
        if name == "plain generate()":
            rates = [r["tokens"] / r["seconds"] for r in rs]
            summary[name] = {"tokens_per_s_incl_prefill": round(_common.median(rates), 2)}
            continue
        rate = _common.median([r["tokens_per_s"] for r in rs])
        summary[name] = {
            "tokens_per_s": round(rate, 2),
            "share_of_bound": round(rate / bound, 3),
            "share_of_lenient_bound": round(rate / lenient, 3),
            "ttft_ms": round(1000 * _common.median([r["prefill_s"] for r in rs]), 1),
        }
    results["summary"] = summary
    base_share = summary["no adapter"]["share_of_bound"]
    lenient_share = summary["no adapter"]["share_of_lenient_bound"]
    results["goal"] = {
        "share_of_bound": base_share,
        "share_of_lenient_bound": lenient_share,
        "met": base_share >= GOAL_SHARE,
        "met_lenient": lenient_share >= GOAL_SHARE,
    }
    path = _common.write_results(args.out, "decode_speed", results)

    print(
        f"\n### Decode speed (SmolLM2-135M fp32, {args.threads} threads, {len(prompt_ids)}-token 5-passage prompt, {args.tokens} new tokens, median of {args.repeats})\n"
    )
    print(
        f"Copy bandwidth {bandwidth / 1e9:.1f} GB/s read + written ({bandwidth / 2e9:.1f} GB/s copied); "
        f"weights {weights / 1e6:.0f} MB; bound {bound:.1f} tokens/s (lenient {lenient:.1f})\n"
    )
    rows = []
    for name, s in summary.items():
        if "tokens_per_s" in s:
            rows.append(
                [
                    name,
                    s["tokens_per_s"],
                    f"{100 * s['share_of_bound']:.0f}%",
                    f"{100 * s['share_of_lenient_bound']:.0f}%",
                    s["ttft_ms"],
                ]
            )
        else:
            rows.append([name, f"{s['tokens_per_s_incl_prefill']} (incl. prefill)", "", "", ""])
    print(
        _common.markdown_table(
            [
                "variant",
                "decode tokens/s",
                "share of bound",
                "share of lenient bound",
                "time to first token (ms)",
            ],
            rows,
        )
    )
    print(
        f"\nGoal >= {GOAL_SHARE:.0%} of the bound (no adapter): {base_share:.0%} of the strict bound -> "
        f"{'MET' if results['goal']['met'] else 'NOT MET'}; {lenient_share:.0%} of the lenient bound -> "
        f"{'MET' if results['goal']['met_lenient'] else 'NOT MET'}"
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
