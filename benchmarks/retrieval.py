"""Figure 1: retrieval quality on SQuAD dev (issue 2).

Passage recall@1/5/10 and MRR@10 for dense, lexical and hybrid retrieval over an index of
``passages.jsonl`` (one paragraph per line), on every answerable question; and answer
recall@1/5/10 (a gold answer string, case-insensitive, appears in the top-k chunk texts) over
an index of the ``corpus/`` article files, chunked for real.

Goal: hybrid passage recall@5 >= 0.95 and recall@1 >= 0.80.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/retrieval.py --data ../shared/data/squad-dev
    # try another fusion recipe without editing the config:
    .venv/bin/python benchmarks/retrieval.py --fusion rrf --dense-weight 1 --lexical-weight 1

Indexes are built under ``benchmarks/out/indexes/`` and reused while the config's build
settings are unchanged (``--rebuild`` forces a build). Results go to
``benchmarks/out/retrieval.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

if TYPE_CHECKING:
    from ragtune.config import HybridRetrieverConfig, RagtuneConfig
    from ragtune.index import IndexStore, SentenceTransformerEmbedder
    from ragtune.indexing import BuildSettings
    from ragtune.retrieve.base import QueryEmbedder, Retriever

KS = (1, 5, 10)
MODES = ("dense", "lexical", "hybrid")
GOAL_R1, GOAL_R5 = 0.80, 0.95


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--fusion", choices=("score", "rrf"), help="override the config's fusion")
    p.add_argument("--dense-weight", type=float, help="override retriever.dense_weight")
    p.add_argument("--lexical-weight", type=float, help="override retriever.lexical_weight")
    p.add_argument("--candidates", type=int, help="override retriever.candidates")
    p.add_argument("--rrf-k", type=int, help="override retriever.rrf_k")
    p.add_argument("--limit", type=int, help="only the first N questions (for a quick look)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the indexes even if current")
    p.add_argument("--skip-answer-recall", action="store_true", help="passages only")
    args = p.parse_args(argv)
    data = _common.require_data(args.data, ["passages.jsonl", "questions.jsonl", "corpus"])

    from ragtune import load_config

    config = load_config(args.config)
    hybrid = _hybrid_config(config, args)
    embedder = config.embedder.build()
    settings = config.build_settings()
    questions = _common.load_questions(data, args.limit)
    print(f"{len(questions)} questions; hybrid: {_describe(hybrid)}", flush=True)

    started = time.perf_counter()
    query_embedder = _common.CachedQueryEmbedder(embedder, [q.text for q in questions])
    print(f"embedded the questions in {time.perf_counter() - started:.1f}s", flush=True)

    results: dict[str, Any] = {
        "figure": "retrieval",
        "machine": _common.machine_info(),
        "config": str(args.config),
        "hybrid": _common.section_values(hybrid, exclude={"index"}),
        "questions": len(questions),
        "query_cache_max_abs_diff": query_embedder.max_difference([q.text for q in questions[:20]]),
    }
    index_root = args.out / "indexes"
    index_root.mkdir(parents=True, exist_ok=True)

    passages_index = index_root / "squad-passages"
    results["passages"] = _passage_figures(
        data, passages_index, embedder, query_embedder, settings, hybrid, questions, args.rebuild
    )
    if not args.skip_answer_recall:
        corpus_index = index_root / "squad-corpus"
        results["answers"] = _answer_figures(
            data, corpus_index, embedder, query_embedder, settings, hybrid, questions, args.rebuild
        )

    hyb = results["passages"]["recall"]["hybrid"]
    results["goal"] = {
        "recall@1": hyb["recall@1"],
        "recall@5": hyb["recall@5"],
        "met": hyb["recall@1"] >= GOAL_R1 and hyb["recall@5"] >= GOAL_R5,
    }
    path = _common.write_results(args.out, "retrieval", results)
    _print_tables(results)
    print(f"\nresults: {path}")
    return 0


def _hybrid_config(config: RagtuneConfig, args: argparse.Namespace) -> HybridRetrieverConfig:
    """The config's hybrid settings (defaults when its retriever is not hybrid), overridden."""
    import dataclasses

    from ragtune.config import HybridRetrieverConfig

    base = config.retriever if isinstance(config.retriever, HybridRetrieverConfig) else None
    values = dataclasses.asdict(base) if base is not None else {}
    overrides = {
        "fusion": args.fusion,
        "dense_weight": args.dense_weight,
        "lexical_weight": args.lexical_weight,
        "candidates": args.candidates,
        "rrf_k": args.rrf_k,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["type"] = "hybrid"
    return HybridRetrieverConfig(**values)


def _describe(hybrid: HybridRetrieverConfig) -> str:
    return (
        f"fusion={hybrid.fusion} dense_weight={hybrid.dense_weight} "
        f"lexical_weight={hybrid.lexical_weight} candidates={hybrid.candidates}"
        + (f" rrf_k={hybrid.rrf_k}" if hybrid.fusion == "rrf" else "")
    )


def _retrievers(
    store: IndexStore, query_embedder: QueryEmbedder, hybrid: HybridRetrieverConfig
) -> dict[str, Retriever]:
    from ragtune.config import DenseRetrieverConfig, LexicalRetrieverConfig

    return {
        "dense": DenseRetrieverConfig().build(store, query_embedder),
        "lexical": LexicalRetrieverConfig().build(store),
        "hybrid": hybrid.build(store, query_embedder),
    }


def _build(
    sources: list[Path],
    index: Path,
    embedder: SentenceTransformerEmbedder,
    settings: BuildSettings,
    rebuild: bool,
) -> None:
    report, _built = _common.ensure_index(
        sources, index, embedder=embedder, settings=settings, rebuild=rebuild
    )
    if report is not None:
        print(
            f"built {index.name}: {report.documents_added} documents, {report.chunks_added} chunks "
            f"in {report.seconds:.1f}s; PII replaced: {report.pii or 'none'}; "
            f"skipped: {len(report.skipped)}",
            flush=True,
        )
    else:
        print(f"reusing {index} (built with the same settings)", flush=True)


def _passage_figures(
    data: Path,
    index: Path,
    embedder: SentenceTransformerEmbedder,
    query_embedder: QueryEmbedder,
    settings: BuildSettings,
    hybrid: HybridRetrieverConfig,
    questions: list[_common.Question],
    rebuild: bool,
) -> dict[str, Any]:
    from ragtune.index import IndexStore

    _build([data / "passages.jsonl"], index, embedder, settings, rebuild)
    with IndexStore.open(index) as store:
        documents = list(store.db.documents())
        split = [d for d in documents if d.n_chunks > 1]
        counts = dict(store.manifest.counts)
        figures: dict[str, Any] = {
            "index": str(index),
            "counts": counts,
            "pii_replaced": dict(store.manifest.pii),
            "passages_split": len(split),
            "split_ids": sorted(str(d.metadata.get("id")) for d in split),
            "max_chunks_per_passage": max((d.n_chunks for d in documents), default=0),
            "recall": {},
        }
        for mode, retriever in _retrievers(store, query_embedder, hybrid).items():
            started = time.perf_counter()
            hits = [
                [_common.passage_id(p) for p in retriever.retrieve(q.text, 10)] for q in questions
            ]
            figures["recall"][mode] = _passage_metrics(hits, [q.passage_id for q in questions])
            figures["recall"][mode]["seconds"] = round(time.perf_counter() - started, 1)
            print(f"  passages/{mode}: {figures['recall'][mode]}", flush=True)
    return figures


def _passage_metrics(hits: list[list[str]], gold: list[str]) -> dict[str, float]:
    """Recall@k (the gold passage among the top-k chunks' passages) and MRR@10."""
    metrics: dict[str, float] = {}
    for k in KS:
        metrics[f"recall@{k}"] = sum(g in h[:k] for h, g in zip(hits, gold, strict=True)) / len(
            gold
        )
    reciprocal = [
        1.0 / (h.index(g) + 1) if g in h[:10] else 0.0 for h, g in zip(hits, gold, strict=True)
    ]
    metrics["mrr@10"] = sum(reciprocal) / len(gold)
    return {k: round(v, 4) for k, v in metrics.items()}


def _answer_figures(
    data: Path,
    index: Path,
    embedder: SentenceTransformerEmbedder,
    query_embedder: QueryEmbedder,
    settings: BuildSettings,
    hybrid: HybridRetrieverConfig,
    questions: list[_common.Question],
    rebuild: bool,
) -> dict[str, Any]:
    from ragtune.index import IndexStore

    _build([data / "corpus"], index, embedder, settings, rebuild)
    with IndexStore.open(index) as store:
        figures: dict[str, Any] = {
            "index": str(index),
            "counts": dict(store.manifest.counts),
            "pii_replaced": dict(store.manifest.pii),
            "recall": {},
        }
        for mode, retriever in _retrievers(store, query_embedder, hybrid).items():
            found = {k: 0 for k in KS}
            for q in questions:
                texts = [p.text.lower() for p in retriever.retrieve(q.text, max(KS))]
                answers = [a.lower() for a in q.answers if a.strip()]
                first = next((i for i, t in enumerate(texts) if any(a in t for a in answers)), None)
                for k in KS:
                    found[k] += first is not None and first < k
            figures["recall"][mode] = {
                f"answer_recall@{k}": round(found[k] / len(questions), 4) for k in KS
            }
            print(f"  corpus/{mode}: {figures['recall'][mode]}", flush=True)
    return figures


def _print_tables(results: dict[str, Any]) -> None:
    passages = results["passages"]
    print(
        f"\n### Passage recall ({results['questions']} questions, "
        f"{passages['counts']['chunks']} chunks from {passages['counts']['documents']} passages; "
        f"{passages['passages_split']} passages split)\n"
    )
    rows = [
        [mode]
        + [passages["recall"][mode][f"recall@{k}"] for k in KS]
        + [passages["recall"][mode]["mrr@10"]]
        for mode in MODES
    ]
    print(_common.markdown_table(["mode", "recall@1", "recall@5", "recall@10", "MRR@10"], rows))
    if "answers" in results:
        answers = results["answers"]
        print(
            f"\n### Answer recall over corpus/ ({answers['counts']['chunks']} chunks from "
            f"{answers['counts']['documents']} articles)\n"
        )
        rows = [
            [mode] + [answers["recall"][mode][f"answer_recall@{k}"] for k in KS] for mode in MODES
        ]
        print(_common.markdown_table(["mode", "answer@1", "answer@5", "answer@10"], rows))
    goal = results["goal"]
    print(
        f"\nGoal: hybrid recall@5 >= {GOAL_R5} and recall@1 >= {GOAL_R1}: "
        f"recall@5 {goal['recall@5']:.3f}, recall@1 {goal['recall@1']:.3f} -> "
        f"{'MET' if goal['met'] else 'NOT MET'}  ({_describe_dict(results['hybrid'])})"
    )


def _describe_dict(hybrid: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in hybrid.items() if k != "type")


if __name__ == "__main__":
    sys.exit(main())
