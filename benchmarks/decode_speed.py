"""Decode speed per weight quantization and adapter kind, greedy agreement with float32, time to
first token with and without the prompt-head cache, and llama.cpp on the same GGUF and prompt.

The embedded SmolLM2-135M-Instruct decodes a fixed number of tokens (end of sequence suppressed)
after a 5-passage grounded prompt, for each ``--quantize`` choice (float32 weights, int8, int4;
:mod:`ragtune.generate.quantize`) with: no adapter, a 20-token soft prompt, a 20-token prefix,
LoRA r8 on all seven projections applied per row (:mod:`ragtune.generate.lora`, as a mixed batch
needs), and the same LoRA merged into the weights before quantization. Reported per variant:
decode tokens/s (median over interleaved repeats), the share of the memory-bandwidth bound for
float32 weights, and the time to first token (prefill, prompt head cached). Per quantization:
the greedy tokens of the no-adapter run against float32's (same positions, first difference).

The base is the default one (the shipped grounding adapter merged); the adapters are made on
it. Time to first token of the default prompt (three passages) is measured with
``prompt_cache`` off and on, on the default quantization, for the grounded base (the instruction
as the cached head) and the bare base model (the instruction and two worked examples). With
``llama-cpp-python`` installed (``pip install ragtune[bench]``), llama.cpp runs the model's own
GGUF file (Q4_1, the bare model) on the same prompt tokens with the same thread count: a speed
comparison only.

The bound: decoding one token reads every weight once, so tokens/s cannot exceed (bandwidth) /
(weight bytes), measured here with a 512 MB numpy copy counted as bytes read plus written
(STREAM's convention).

Rerun (from the repository root)::

    .venv/bin/python benchmarks/decode_speed.py --tokens 64 --repeats 3 --threads 2

Results go to ``benchmarks/out/decode_speed.json``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _generation

if TYPE_CHECKING:
    import torch

    from ragtune.generate import AdapterRegistry, LoadedModel
    from ragtune.types import Generation

GOAL_TOKENS_PER_S = 60.0
GOAL_LORA_OVERHEAD = 0.15


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


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of distinct parameter and buffer tensors (a tied embedding counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def agreement(reference: Sequence[int], tokens: Sequence[int]) -> dict[str, Any]:
    """Share of positions where ``tokens`` equals ``reference``, and the first that differs."""
    same = sum(a == b for a, b in zip(reference, tokens, strict=False))
    first = next(
        (i for i, (a, b) in enumerate(zip(reference, tokens, strict=False)) if a != b),
        min(len(reference), len(tokens)),
    )
    return {"same": same, "of": len(reference), "first_difference": first}


def llama_cpp_run(prompt_ids: Sequence[int], tokens: int, threads: int) -> Callable[[], Any] | None:
    """A run of llama.cpp on the embedded GGUF over ``prompt_ids``, or None when
    ``llama-cpp-python`` is not installed. Returns prefill and decode seconds and the tokens."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from ragtune.generate.models import DEFAULT_MODEL, EMBEDDED_MODELS

    gguf = EMBEDDED_MODELS[DEFAULT_MODEL].gguf_path()
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False)

    def run() -> dict[str, Any]:
        llm.reset()
        started = time.perf_counter()
        llm.eval(list(prompt_ids))
        prefill = time.perf_counter() - started
        out = []
        started = time.perf_counter()
        for _ in range(tokens):
            token = int(llm.sample(temp=0.0))
            out.append(token)
            llm.eval([token])
        return {"prefill_s": prefill, "decode_s": time.perf_counter() - started, "tokens": out}

    return run


def merged_base(folder: str, scheme: str) -> LoadedModel:
    """The default base with the LoRA adapter in ``folder`` merged into its weights, then
    quantized to ``scheme``: what a LoRA costs when it is not applied per row."""
    from dataclasses import replace

    from ragtune.generate import load_base_model
    from ragtune.generate.grounding import merge_grounding
    from ragtune.generate.quantize import quantize_linears

    merged = merge_grounding(load_base_model(device="cpu", quantize="none"), Path(folder))
    quantize_linears(merged.model, scheme)  # type: ignore[arg-type]
    return replace(merged, quantize=scheme)


def prompt_ttft(
    registry: AdapterRegistry, base: LoadedModel, args: argparse.Namespace
) -> dict[str, Any]:
    """Time to first token (median prefill) of the benchmark question on ``base`` without an
    adapter, with the prompt-head cache off and on; and the prompt's length."""
    from ragtune.generate import DecodeSettings, GeneratorSettings
    from ragtune.types import NO_ADAPTER

    one = DecodeSettings(max_new_tokens=1)
    passages = _generation.passages()
    ttft: dict[str, float] = {}
    prompt_tokens = 0
    for cache in (False, True):
        generator, _ = _generation.make_generator(
            registry, base=base, settings=GeneratorSettings(prompt_cache=cache)
        )
        first = generator.generate(_generation.QUESTION, passages, adapter=NO_ADAPTER, settings=one)
        prompt_tokens = first.prompt_tokens
        seconds = [
            generator.generate(
                _generation.QUESTION, passages, adapter=NO_ADAPTER, settings=one
            ).prefill_seconds
            for _ in range(max(args.repeats, 1))
        ]
        ttft["prompt cache on" if cache else "prompt cache off"] = round(
            1000 * _common.median(seconds), 1
        )
    return {"quantize": base.quantize, "prompt_tokens": prompt_tokens, "ttft_ms": ttft}


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=64, help="new tokens per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quantize", default="none,int8,int4", help="comma-separated choices")
    args = p.parse_args(argv)
    _generation.set_threads(args.threads)
    schemes = [s.strip() for s in args.quantize.split(",") if s.strip()]

    from ragtune.generate import DecodeSettings, load_base_model
    from ragtune.types import NO_ADAPTER

    work = Path(tempfile.mkdtemp(prefix="ragtune-decode-"))
    registry = _generation.make_adapters(
        work, [("prompt", "prompt"), ("prefix", "prefix"), ("lora", "lora")]
    )
    lora_folder = str(registry.resolve("bench/lora").folder)
    settings = DecodeSettings(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    passages = _generation.passages()
    runs: dict[str, Callable[[], Generation]] = {}
    generators = {}
    for scheme in schemes:
        generator, _pool = _generation.make_generator(
            registry, base=load_base_model(device="cpu", quantize=scheme)
        )
        generators[scheme] = generator
        merged, _ = _generation.make_generator(registry, base=merged_base(lora_folder, scheme))
        for label, adapter in (
            ("no adapter", NO_ADAPTER),
            ("prompt (20 tokens)", _generation.bench("prompt")),
            ("prefix (20 tokens)", _generation.bench("prefix")),
            ("LoRA r8, per row", _generation.bench("lora")),
        ):
            runs[f"{scheme} | {label}"] = functools.partial(
                generator.generate,
                _generation.QUESTION,
                passages,
                adapter=adapter,
                settings=settings,
            )
        runs[f"{scheme} | LoRA r8, merged"] = functools.partial(
            merged.generate, _generation.QUESTION, passages, adapter=NO_ADAPTER, settings=settings
        )
    first = generators[schemes[0]]
    prompt_ids = list(first.prompt(_generation.QUESTION, passages, reserve=args.tokens).token_ids)

    bandwidth = copy_bandwidth()
    fp32_bytes = weight_bytes(load_base_model(device="cpu", quantize="none").model)
    bound = bandwidth / fp32_bytes
    results: dict[str, Any] = {
        "figure": "decode_speed",
        "machine": _common.machine_info(),
        "threads": args.threads,
        "new_tokens": args.tokens,
        "prompt_tokens": len(prompt_ids),
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 2),
        "float32_weight_bytes": fp32_bytes,
        "weight_bytes": {
            s: weight_bytes(load_base_model(device="cpu", quantize=s).model) for s in schemes
        },
        "bound_tokens_per_s": round(bound, 2),
        "runs": {name: [] for name in runs},
        "conditions": [],
    }
    for run in runs.values():  # warm-up: loads adapters, pages in weights, caches prompt heads
        run()
    names = list(runs)
    tokens: dict[str, tuple[int, ...]] = {}
    for rep in range(args.repeats):
        results["conditions"].append(_common.wait_for_quiet(args.max_wait, label=f"repeat {rep}"))
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            g = runs[name]()
            tokens[name] = g.token_ids
            results["runs"][name].append(
                {
                    "prefill_s": round(g.prefill_seconds, 4),
                    "decode_s": round(g.decode_seconds, 4),
                    "tokens": g.output_tokens,
                    "tokens_per_s": round(g.tokens_per_second, 3),
                }
            )
            print(
                f"  repeat {rep} {name}: {g.tokens_per_second:.2f} tok/s, "
                f"prefill {g.prefill_seconds * 1000:.0f} ms",
                flush=True,
            )

    summary: dict[str, Any] = {}
    for name, rs in results["runs"].items():
        rate = _common.median([r["tokens_per_s"] for r in rs])
        summary[name] = {
            "tokens_per_s": round(rate, 2),
            "share_of_fp32_bound": round(rate / bound, 3),
            "ttft_ms": round(1000 * _common.median([r["prefill_s"] for r in rs]), 1),
        }
    results["summary"] = summary
    reference = tokens.get("none | no adapter")
    if reference is not None:
        results["greedy_agreement_with_float32"] = {
            s: agreement(reference, tokens[f"{s} | no adapter"]) for s in schemes
        }
        results["greedy_agreement_with_float32_merged_lora"] = {
            s: agreement(tokens["none | LoRA r8, merged"], tokens[f"{s} | LoRA r8, merged"])
            for s in schemes
        }

    # Time to first token of the default prompt: the default base (the shipped grounding adapter
    # merged, instruction only) and the bare base model (its two worked examples shown).
    results["default_prompt"] = {
        label: prompt_ttft(registry, load_base_model(device="cpu", grounding=grounding), args)
        for label, grounding in (("grounded (default)", "shipped"), ("bare base", "none"))
    }

    llama = llama_cpp_run(prompt_ids, args.tokens, args.threads)
    if llama is not None:
        llama()  # warm-up
        runs_cpp = [llama() for _ in range(args.repeats)]
        rate = _common.median([args.tokens / r["decode_s"] for r in runs_cpp])
        results["llama_cpp"] = {
            "tokens_per_s": round(rate, 2),
            # Its GGUF is the bare base model: no grounding adapter, so no agreement is reported.
            "ttft_ms": round(1000 * _common.median([r["prefill_s"] for r in runs_cpp]), 1),
        }

    fastest = max((s for s in schemes), key=lambda s: summary[f"{s} | no adapter"]["tokens_per_s"])
    best = summary[f"{fastest} | no adapter"]["tokens_per_s"]
    lora = summary[f"{fastest} | LoRA r8, per row"]["tokens_per_s"]
    results["goals"] = {
        "fastest": fastest,
        "tokens_per_s": best,
        "tokens_per_s_met": best >= GOAL_TOKENS_PER_S,
        "per_row_lora_overhead": round(1 - lora / best, 3),
        "per_row_lora_met": 1 - lora / best <= GOAL_LORA_OVERHEAD,
    }
    if "llama_cpp" in results:
        results["goals"]["ratio_to_llama_cpp"] = round(
            best / results["llama_cpp"]["tokens_per_s"], 3
        )
    path = _common.write_results(args.out, "decode_speed", results)
    print_report(results, args)
    print(f"results: {path}")
    return 0


def print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n### Decode speed (SmolLM2-135M, {args.threads} threads, "
        f"{results['prompt_tokens']}-token 5-passage prompt, {args.tokens} new tokens, "
        f"median of {args.repeats})\n"
    )
    print(
        f"Copy bandwidth {results['copy_bandwidth_gb_s']} GB/s; float32 weights "
        f"{results['float32_weight_bytes'] / 1e6:.0f} MB: bound {results['bound_tokens_per_s']} "
        f"tokens/s; weights per quantization (MB): "
        + ", ".join(f"{s} {b / 1e6:.0f}" for s, b in results["weight_bytes"].items())
        + "\n"
    )
    rows = [
        [
            name.replace(" | ", ", "),
            s["tokens_per_s"],
            f"{100 * s['share_of_fp32_bound']:.0f}%",
            s["ttft_ms"],
        ]
        for name, s in results["summary"].items()
    ]
    if "llama_cpp" in results:
        cpp = results["llama_cpp"]
        rows.append(["llama.cpp, Q4_1 GGUF", cpp["tokens_per_s"], "", cpp["ttft_ms"]])
    print(
        _common.markdown_table(
            ["weights, variant", "decode tokens/s", "share of fp32 bound", "TTFT (ms)"], rows
        )
    )
    for key in ("greedy_agreement_with_float32", "greedy_agreement_with_float32_merged_lora"):
        if key in results:
            print(
                f"\n{key}: "
                + "; ".join(
                    f"{s}: {a['same']}/{a['of']} (first difference at {a['first_difference']})"
                    for s, a in results[key].items()
                )
            )
    for label, d in results["default_prompt"].items():
        print(
            f"\nDefault prompt, {label} ({d['prompt_tokens']} tokens, {d['quantize']}): time to "
            f"first token {d['ttft_ms']['prompt cache off']} ms without the prompt-head cache, "
            f"{d['ttft_ms']['prompt cache on']} ms with it"
        )
    goals = results["goals"]
    print(
        f"Goals ({goals['fastest']}): >= {GOAL_TOKENS_PER_S:.0f} tokens/s: {goals['tokens_per_s']} "
        f"-> {'MET' if goals['tokens_per_s_met'] else 'NOT MET'}; per-row LoRA within "
        f"{GOAL_LORA_OVERHEAD:.0%}: {goals['per_row_lora_overhead']:.1%} -> "
        f"{'MET' if goals['per_row_lora_met'] else 'NOT MET'}"
        + (
            f"; ratio to llama.cpp {goals['ratio_to_llama_cpp']}"
            if "ratio_to_llama_cpp" in goals
            else "; llama.cpp not installed (pip install ragtune[bench])"
        )
    )


if __name__ == "__main__":
    sys.exit(main())
