"""Figure 2 of the generator issue: adapter switch and load times, memory per loaded adapter.

On the embedded SmolLM2 with ``--per-kind`` registered adapters of each kind (20-token soft
prompts and prefixes, LoRA r8 on all seven projections):

* load from disk: ``generator.load_adapter("bench/NAME")`` for a version not yet in memory
  (read, integrity and fit checks, tensors to the model's device; LoRA as plain A/B tensors for
  the per-row LoRA, nothing injected into the model); LoRA loads are also timed after
  ``--held`` LoRA adapters are already in memory (a load must not slow with the number held);
* switch: ``generator.load_adapter(AdapterRef("bench", NAME))`` of one already loaded, which re-reads
  the registry pointer (so a promotion would be seen) and picks the loaded version;
* memory: resident set size before and after loading all adapters of a kind, per adapter,
  next to the adapter's parameter bytes.

Goals: switch p50 <= 5 ms; load <= 300 ms; LoRA load p50 <= 30 ms with 16 adapters held;
extra memory per adapter close to its size. The base model is the default (grounded, int8 on the CPU).

Rerun (from the repository root)::

    .venv/bin/python benchmarks/adapter_switch.py --per-kind 8 --held 16

Results go to ``benchmarks/out/adapter_switch.json``.
"""

from __future__ import annotations

import gc
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _generation

GOAL_SWITCH_MS, GOAL_LOAD_MS, GOAL_LORA_HELD_MS = 5.0, 300.0, 30.0
KINDS = ("prompt", "prefix", "lora")


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--per-kind", type=int, default=8, help="adapters of each kind")
    p.add_argument("--switches", type=int, default=500)
    p.add_argument("--held", type=int, default=16, help="LoRA adapters held before timed loads")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    _generation.set_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="ragtune-switch-"))
    names = [(f"{kind}{i}", kind) for kind in KINDS for i in range(args.per_kind)]
    held = [(f"held{i}", "lora") for i in range(args.held)]
    registry = _generation.make_adapters(work, names + held)
    gc.collect()
    generator, pool = _generation.make_generator(registry, max_loaded=len(names) + len(held) + 1)
    results: dict[str, Any] = {
        "figure": "adapter_switch",
        "machine": _common.machine_info(),
        "per_kind": args.per_kind,
        "conditions": [_common.wait_for_quiet(args.max_wait, label="start")],
        "kinds": {},
    }
    for kind in KINDS:
        gc.collect()
        before = _common.rss_bytes()
        loads = []
        nbytes = 0
        for name, k in names:
            if k != kind:
                continue
            started = time.perf_counter()
            generator.load_adapter(_generation.bench(name))
            loads.append(time.perf_counter() - started)
            nbytes = pool.loaded[-1].nbytes
        gc.collect()
        extra = (_common.rss_bytes() - before) / args.per_kind
        results["kinds"][kind] = {
            "load_ms_p50": round(1000 * _common.median(loads), 1),
            "load_ms_max": round(1000 * max(loads), 1),
            "first_load_ms": round(1000 * loads[0], 1),
            "adapter_bytes": nbytes,
            "extra_rss_bytes_per_adapter": round(extra),
        }
        print(
            f"  {kind}: load p50 {1000 * _common.median(loads):.1f} ms (first {1000 * loads[0]:.0f} ms), "
            f"{nbytes / 1e6:.2f} MB of parameters, +{extra / 1e6:.2f} MB resident each",
            flush=True,
        )

    # LoRA loads with more adapters held: `held` more LoRA first, then each bench LoRA again
    # under a new registration (a version not in memory).
    for name, _kind in held:
        generator.load_adapter(_generation.bench(name))
    later = []
    for name, kind in names:
        if kind != "lora":
            continue
        pool.unload(registry.resolve(_generation.bench(name)).key)
        started = time.perf_counter()
        generator.load_adapter(_generation.bench(name))
        later.append(time.perf_counter() - started)
    results["lora_load_with_held"] = {
        "held": len(pool.loaded) - 1,
        "load_ms_p50": round(1000 * _common.median(later), 1),
        "load_ms_max": round(1000 * max(later), 1),
    }
    print(
        f"  lora, {len(pool.loaded) - 1} adapters held: load p50 "
        f"{1000 * _common.median(later):.1f} ms",
        flush=True,
    )

    rng = random.Random(0)
    refs = [_generation.bench(name) for name, _ in names]
    for ref in refs:  # warm
        generator.load_adapter(ref)
    switches: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(args.switches):
        name, kind = names[rng.randrange(len(names))]
        started = time.perf_counter()
        generator.load_adapter(_generation.bench(name))  # re-reads the current pointer
        switches[kind].append(time.perf_counter() - started)
    every = [s for v in switches.values() for s in v]
    results["switch_ms"] = {
        "p50": round(1000 * _common.median(every), 3),
        "p95": round(1000 * _common.percentile(every, 95), 3),
        "by_kind_p50": {k: round(1000 * _common.median(v), 3) for k, v in switches.items()},
    }
    worst_load = max(v["load_ms_p50"] for v in results["kinds"].values())
    results["goals"] = {
        "switch_p50_ms": results["switch_ms"]["p50"],
        "switch_met": results["switch_ms"]["p50"] <= GOAL_SWITCH_MS,
        "load_p50_ms_worst_kind": worst_load,
        "load_met": worst_load <= GOAL_LOAD_MS,
        "lora_load_with_held_ms": results["lora_load_with_held"]["load_ms_p50"],
        "lora_load_with_held_met": results["lora_load_with_held"]["load_ms_p50"]
        <= GOAL_LORA_HELD_MS,
    }
    path = _common.write_results(args.out, "adapter_switch", results)
    print(
        f"\n### Adapter switch and load (SmolLM2-135M, {pool.base.quantize}, {args.per_kind} "
        "adapters per kind)\n"
    )
    rows = [
        [
            kind,
            s["load_ms_p50"],
            s["first_load_ms"],
            results["switch_ms"]["by_kind_p50"][kind],
            f"{s['adapter_bytes'] / 1e6:.2f}",
            f"{s['extra_rss_bytes_per_adapter'] / 1e6:.2f}",
        ]
        for kind, s in results["kinds"].items()
    ]
    print(
        _common.markdown_table(
            [
                "kind",
                "load p50 (ms)",
                "first load (ms)",
                "switch p50 (ms)",
                "parameters (MB)",
                "extra resident (MB)",
            ],
            rows,
        )
    )
    print(
        f"\nSwitch p50 {results['switch_ms']['p50']} ms, p95 {results['switch_ms']['p95']} ms (goal <= {GOAL_SWITCH_MS}); "
        f"load p50 worst kind {worst_load} ms (goal <= {GOAL_LOAD_MS}); LoRA load p50 with "
        f"{results['lora_load_with_held']['held']} held "
        f"{results['lora_load_with_held']['load_ms_p50']} ms (goal <= {GOAL_LORA_HELD_MS})"
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
