"""Figure 3: query latency and memory per chunk at 1k and 100k chunks (issue 2).

Latency is one ``retriever.retrieve(question, 5)`` call: embed the query, search, fetch the
passages from SQLite. Dense, lexical and hybrid (settings from the config) are reported
apart; for dense the three steps are also timed on their own.

The 1k index is ``passages.jsonl`` built with ``build_index``. The 100k index is built through
the low-level API (``IndexUpdate``) from the 1,065 passages embedded once: ``--copies`` copies
of each (one chunk per passage), copy j's text ending in " [copy j]" and its vector moved by
gaussian noise (``--noise`` per dimension) and normalised again; copy 0 is the original. It is
built twice, with flat and HNSW vectors; HNSW is reported next to flat with its top-5 agreement
with exact search.

Goal: dense p50 <= 15 ms at 100k chunks on 2 cores.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/query_latency.py --data ../shared/data/squad-dev

Indexes go to ``benchmarks/out/indexes/`` and are reused while their settings are unchanged
(``--rebuild`` forces new ones). Results go to ``benchmarks/out/query_latency.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

if TYPE_CHECKING:
    import numpy as np

    from ragtune.config import HybridRetrieverConfig, RagtuneConfig, VectorIndexConfig
    from ragtune.index import Embedder, SentenceTransformerEmbedder, VectorIndexSpec
    from ragtune.indexing import BuildSettings
    from ragtune.retrieve.base import Retriever

    ScaledSource = tuple[list[dict[str, Any]], np.ndarray, np.ndarray]
    """The passages, how many vectors each has, and those vectors."""

GOAL_P50_MS = 15.0
MODES = ("dense", "lexical", "hybrid")


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=500, help="questions timed per index and mode")
    p.add_argument("--warmup", type=int, default=30, help="untimed queries first")
    p.add_argument("--copies", type=int, default=94, help="copies of each passage at 100k")
    p.add_argument("--noise", type=float, default=0.01, help="per-dimension noise on copies")
    p.add_argument("--vectors", default="flat,hnsw", help="vector index types at 100k")
    p.add_argument("--no-large", action="store_true", help="only the 1k index")
    p.add_argument("--threads", type=int, default=2, help="torch and FAISS threads")
    p.add_argument("--rebuild", action="store_true", help="rebuild the indexes even if current")
    p.add_argument("--measure-open", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure_open is not None:
        return _measure_open(args.measure_open, args.threads)
    data = _common.require_data(args.data, ["passages.jsonl", "questions.jsonl"])

    import faiss
    import torch

    from ragtune import load_config

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    config = load_config(args.config)
    embedder = config.embedder.build()
    settings = config.build_settings()
    hybrid = _hybrid_config(config)
    root = args.out / "indexes"
    root.mkdir(parents=True, exist_ok=True)

    indexes: dict[str, Path] = {}
    small = root / "squad-passages"
    _report, built = _common.ensure_index(
        [data / "passages.jsonl"], small, embedder=embedder, settings=settings, rebuild=args.rebuild
    )
    print(f"{'built' if built else 'reusing'} {small}", flush=True)
    indexes["1k/flat"] = small
    if not args.no_large:
        for kind in [v.strip() for v in args.vectors.split(",") if v.strip()]:
            folder = root / f"squad-x{args.copies}-{kind}"
            _ensure_scaled(data, folder, embedder, settings, config.index.vectors, kind, args)
            indexes[f"{_chunks_label(folder)}/{kind}"] = folder

    results: dict[str, Any] = {
        "figure": "query_latency",
        "machine": _common.machine_info(),
        "threads": args.threads,
        "hybrid": _common.section_values(hybrid, exclude={"index"}),
        "copies": args.copies,
        "noise": args.noise,
        "memory": {name: _memory(folder, args.threads) for name, folder in indexes.items()},
    }
    questions = _common.load_questions(data)
    step = max(1, len(questions) // args.queries)
    queries = [q.text for q in questions[::step][: args.queries]]
    results["queries"] = len(queries)
    results["conditions"] = _common.wait_for_quiet(args.max_wait, label="latency")
    results["latency"], agreement = _latencies(indexes, embedder, hybrid, queries, args.warmup)
    results["conditions"]["load_after"] = _common.load_average()
    results["hnsw_top5_agreement_with_flat"] = agreement
    large = [n for n in results["latency"] if n.endswith("/flat") and not n.startswith("1k")]
    if large:
        p50 = results["latency"][large[0]]["dense"]["p50_ms"]
        results["goal"] = {"index": large[0], "dense_p50_ms": p50, "met": p50 <= GOAL_P50_MS}
    path = _common.write_results(args.out, "query_latency", results)
    _print_tables(results)
    print(f"\nresults: {path}")
    return 0


def _chunks_label(folder: Path) -> str:
    from ragtune.index import Manifest

    n = Manifest.read(folder).counts.get("chunks", 0)
    return f"{round(n / 1000)}k"


def _hybrid_config(config: RagtuneConfig) -> HybridRetrieverConfig:
    from ragtune.config import HybridRetrieverConfig

    retriever = config.retriever
    return retriever if isinstance(retriever, HybridRetrieverConfig) else HybridRetrieverConfig()


# ---- the 100k index ---------------------------------------------------------------------


def _ensure_scaled(
    data: Path,
    folder: Path,
    embedder: SentenceTransformerEmbedder,
    settings: BuildSettings,
    configured: VectorIndexConfig,
    kind: str,
    args: argparse.Namespace,
) -> None:
    """Build the scaled index unless one with the same settings is there; the vector index
    takes the config's parameters when the config names this type, else that type's defaults."""
    from ragtune.config import FlatIndexConfig, HNSWIndexConfig, IVFPQIndexConfig
    from ragtune.index.vectors import vector_spec_to_dict

    spec_config = {"flat": FlatIndexConfig, "hnsw": HNSWIndexConfig, "ivf-pq": IVFPQIndexConfig}
    spec = (
        configured.spec()
        if configured is not None and configured.type == kind
        else spec_config[kind]().spec()
    )
    source = data / "passages.jsonl"
    stamp = {
        "builder": 2,  # bump when _build_scaled changes what it writes
        "source": str(source),
        "copies": args.copies,
        "noise": args.noise,
        "embedder": [embedder.name, embedder.backend],
        "vectors": vector_spec_to_dict(spec),
        "settings": json.loads(json.dumps(dataclasses.asdict(settings), default=str)),
    }
    stamp_file = folder.with_name(folder.name + ".sources.json")
    if (
        not args.rebuild
        and (folder / "manifest.json").is_file()
        and stamp_file.is_file()
        and json.loads(stamp_file.read_text()) == stamp
    ):
        print(f"reusing {folder}", flush=True)
        return
    started = time.perf_counter()
    _build_scaled(source, folder, embedder, settings, spec, args.copies, args.noise)
    stamp_file.write_text(json.dumps(stamp))
    print(f"built {folder} in {time.perf_counter() - started:.0f}s", flush=True)


_BASE_VECTORS: dict[tuple[str, bool, bool], ScaledSource] = {}


def _passages_and_vectors(
    source: Path, embedder: Embedder, settings: BuildSettings
) -> ScaledSource:
    """The passages, how many vectors each has, and those vectors (embedded once).

    A passage is one chunk; its dense units (the chunk, or each sentence when the settings
    ask for sentence vectors) are what ``build_index`` would embed for it.
    """
    import numpy as np

    from ragtune.index.units import dense_units

    sentences = settings.sentence_vectors
    key = (str(source), sentences, settings.title_in_text)
    if key not in _BASE_VECTORS:
        passages = _common.read_jsonl(source)
        units = [
            dense_units(
                p["title"], p["text"], sentences=sentences, with_title=settings.title_in_text
            )
            for p in passages
        ]
        counts = np.asarray([len(u) for u in units], dtype=np.int64)
        texts = [text for unit in units for text in unit]
        started = time.perf_counter()
        vectors = embedder.embed(texts)
        print(
            f"embedded {len(texts)} units of {len(passages)} passages in "
            f"{time.perf_counter() - started:.0f}s",
            flush=True,
        )
        _BASE_VECTORS[key] = (passages, counts, vectors)
    return _BASE_VECTORS[key]


def _build_scaled(
    source: Path,
    folder: Path,
    embedder: SentenceTransformerEmbedder,
    settings: BuildSettings,
    spec: VectorIndexSpec,
    copies: int,
    noise: float,
) -> None:
    """Write an index of ``copies`` noisy copies of every passage with ragtune's own store."""
    import numpy as np

    from ragtune.index import EmbedderInfo, IndexUpdate, Manifest
    from ragtune.index.chunkdb import SourceRecord
    from ragtune.index.units import vector_ids
    from ragtune.index.vectors import vector_spec_to_dict
    from ragtune.types import Chunk

    passages, counts, base = _passages_and_vectors(source, embedder, settings)
    sentences = settings.sentence_vectors
    manifest = Manifest(
        embedder=EmbedderInfo(
            name=embedder.name,
            dimension=embedder.dimension,
            model=embedder.model,
            normalized=True,
            backend=embedder.backend,
            max_tokens=embedder.max_tokens,
        ),
        chunking={
            "chunk_tokens": settings.chunk_tokens,
            "overlap_tokens": settings.overlap_tokens,
            "title_in_text": settings.title_in_text,
            "dense_units": "sentence" if sentences else "chunk",
            "splitter": f"benchmark: one chunk per passage, {copies} noisy copies",
        },
        ingest={"scrub_pii": False},
        vectors=vector_spec_to_dict(spec),
        lexical=settings.lexical.to_dict(),
    )
    stat = source.stat()
    rng = np.random.default_rng(0)
    now = time.time()
    with IndexUpdate(folder, new=manifest) as update:
        for copy in range(copies):
            rows: list[int] = []
            for line, (p, n_vectors) in enumerate(zip(passages, counts, strict=True), start=1):
                text = p["text"] if copy == 0 else f"{p['text']} [copy {copy}]"
                sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
                doc_id = sha[:16]
                chunk = Chunk(f"{doc_id}:0", doc_id, 0, text, 0, len(text), p["title"])
                rows += update.db.add_document(
                    doc_id=doc_id,
                    tenant=None,
                    sha256=sha,
                    title=p["title"],
                    metadata={"id": p["id"], "copy": copy},
                    ingested_at=now,
                    pii={},
                    chunks=[chunk],
                    n_vectors=[int(n_vectors)],
                )
                update.db.link_source(
                    SourceRecord(
                        f"{source}#L{line}#copy{copy}",
                        None,
                        str(source),
                        doc_id,
                        stat.st_mtime,
                        stat.st_size,
                    )
                )
            vectors = base if copy == 0 else base + rng.normal(0.0, noise, base.shape)
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = vector_ids(np.asarray(rows, dtype=np.int64), counts)
            update.vectors.add(ids, vectors.astype(np.float32))
        update.commit()


# ---- memory -----------------------------------------------------------------------------


def _memory(folder: Path, threads: int) -> dict[str, Any]:
    """Bytes per chunk of each part, and the RSS a fresh process grows by opening the index."""
    from ragtune.index import Manifest

    manifest = Manifest.read(folder)
    gen = folder / manifest.generation
    n = manifest.counts["chunks"]
    proc = subprocess.run(
        [sys.executable, __file__, "--measure-open", str(folder), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    opened = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "chunks": n,
        "vectors": manifest.counts.get("vectors", n),
        "faiss_bytes_per_chunk": round(opened["faiss_nbytes"] / n, 1),
        "faiss_file_bytes_per_chunk": round(_common.dir_size(gen / "index.faiss") / n, 1),
        "sqlite_bytes_per_chunk": round(_common.dir_size(gen / "chunks.sqlite") / n, 1),
        "bm25_bytes_per_chunk": round(_common.dir_size(gen / "bm25") / n, 1),
        "rss_growth_bytes": opened["rss_growth"],
        "rss_growth_bytes_per_chunk": round(opened["rss_growth"] / n, 1),
        "open_seconds": opened["open_seconds"],
    }


def _measure_open(folder: Path, threads: int) -> int:
    """In a fresh process: RSS before and after ``IndexStore.open`` (libraries imported first)."""
    import bm25s  # noqa: F401
    import faiss

    from ragtune.index import IndexStore

    faiss.omp_set_num_threads(threads)
    before = _common.rss_bytes()
    started = time.perf_counter()
    store = IndexStore.open(folder)
    seconds = time.perf_counter() - started
    growth = _common.rss_bytes() - before
    nbytes = store.vectors.nbytes
    store.close()
    print(
        json.dumps(
            {"rss_growth": growth, "open_seconds": round(seconds, 3), "faiss_nbytes": nbytes}
        )
    )
    return 0


# ---- latency ----------------------------------------------------------------------------


def _latencies(
    indexes: dict[str, Path],
    embedder: SentenceTransformerEmbedder,
    hybrid: HybridRetrieverConfig,
    queries: list[str],
    warmup: int,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Time every (index, mode) on every query, interleaved so load hits them alike."""
    from ragtune.config import DenseRetrieverConfig, LexicalRetrieverConfig
    from ragtune.index import IndexStore

    stores = {name: IndexStore.open(folder) for name, folder in indexes.items()}
    cells: list[tuple[str, str, Retriever]] = []
    for name, store in stores.items():
        retrievers: dict[str, Retriever] = {
            "dense": DenseRetrieverConfig().build(store, embedder),
            "lexical": LexicalRetrieverConfig().build(store),
            "hybrid": hybrid.build(store, embedder),
        }
        for mode in MODES:
            if mode == "lexical" and name.endswith("/hnsw"):
                continue  # the same BM25 index as the flat one
            cells.append((name, mode, retrievers[mode]))
    for query in queries[:warmup]:
        for _name, _mode, retriever in cells:
            retriever.retrieve(query, 5)
        for store in stores.values():
            store.search_dense(embedder.embed_query(query), 5)

    times: dict[tuple[str, str], list[float]] = {(n, m): [] for n, m, _ in cells}
    steps: dict[str, dict[str, list[float]]] = {
        n: {"embed": [], "search": [], "fetch": []} for n in stores
    }
    top5: dict[str, list[list[str]]] = {n: [] for n in stores}
    # The copies of one passage are near-duplicates: which copy comes first is arbitrary, so
    # agreement is also measured on the passages behind the hits.
    top5_passages: dict[str, list[list[str]]] = {n: [] for n in stores}
    clock = time.perf_counter
    for i, query in enumerate(queries):
        shift = i % len(cells)
        for name, mode, retriever in cells[shift:] + cells[:shift]:
            started = clock()
            hits = retriever.retrieve(query, 5)
            times[(name, mode)].append(clock() - started)
            if mode == "dense":
                top5[name].append([h.chunk_id for h in hits])
                top5_passages[name].append(
                    [re.sub(r" \[copy \d+\]$", "", h.text)[:200] for h in hits]
                )
        for name, store in stores.items():  # the dense steps on their own
            t0 = clock()
            vector = embedder.embed_query(query)
            t1 = clock()
            ids, scores = store.search_dense(vector, 5)
            t2 = clock()
            store.passages(ids, scores)
            t3 = clock()
            for step, seconds in zip(
                ("embed", "search", "fetch"), (t1 - t0, t2 - t1, t3 - t2), strict=True
            ):
                steps[name][step].append(seconds)
    for store in stores.values():
        store.close()

    out: dict[str, Any] = {}
    for (name, mode), values in times.items():
        out.setdefault(name, {})[mode] = _stats(values)
    for name, by_step in steps.items():
        out[name]["dense_steps"] = {step: _stats(v) for step, v in by_step.items()}
    agreement = {}
    for name in stores:
        flat = name.replace("/hnsw", "/flat")
        if name.endswith("/hnsw") and flat in top5:
            same = [
                len(set(a) & set(b)) / max(len(b), 1)
                for a, b in zip(top5[name], top5[flat], strict=True)
            ]
            agreement[name] = round(sum(same) / len(same), 4)
            same_passages = [
                len(set(a) & set(b)) / max(len(set(b)), 1)
                for a, b in zip(top5_passages[name], top5_passages[flat], strict=True)
            ]
            agreement[f"{name} (passages)"] = round(sum(same_passages) / len(same_passages), 4)
    return out, agreement


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(_common.percentile(ms, 50), 2),
        "p95_ms": round(_common.percentile(ms, 95), 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
        "n": len(ms),
    }


def _print_tables(results: dict[str, Any]) -> None:
    print(
        f"\n### Query latency ({results['queries']} queries, k=5, {results['threads']} threads, "
        f"load {results['conditions']['load_average']})\n"
    )
    rows = []
    for name, by_mode in results["latency"].items():
        for mode in MODES:
            if mode in by_mode:
                s = by_mode[mode]
                rows.append([name, mode, s["p50_ms"], s["p95_ms"], s["mean_ms"]])
        steps = by_mode["dense_steps"]
        rows.append(
            [
                name,
                "dense steps (p50)",
                f"embed {steps['embed']['p50_ms']:.2f}",
                f"search {steps['search']['p50_ms']:.2f}",
                f"fetch {steps['fetch']['p50_ms']:.2f}",
            ]
        )
    print(_common.markdown_table(["index", "mode", "p50 ms", "p95 ms", "mean ms"], rows))
    print("\n### Memory per chunk\n")
    rows = [
        [
            name,
            m["chunks"],
            m["vectors"],
            m["faiss_bytes_per_chunk"],
            m["sqlite_bytes_per_chunk"],
            m["bm25_bytes_per_chunk"],
            m["rss_growth_bytes_per_chunk"],
            round(m["rss_growth_bytes"] / 2**20, 1),
            m["open_seconds"],
        ]
        for name, m in results["memory"].items()
    ]
    headers = [
        "index",
        "chunks",
        "vectors",
        "FAISS B/chunk",
        "SQLite B/chunk",
        "BM25 B/chunk",
        "RSS growth B/chunk",
        "RSS growth MiB",
        "open s",
    ]
    print(_common.markdown_table(headers, rows))
    for name, value in results["hnsw_top5_agreement_with_flat"].items():
        print(f"\n{name}: dense top-5 agreement with exact (flat) search {value:.3f}")
    if "goal" in results:
        g = results["goal"]
        print(
            f"\nGoal dense p50 <= {GOAL_P50_MS} ms at {g['index']}: {g['dense_p50_ms']:.2f} ms -> "
            f"{'MET' if g['met'] else 'NOT MET'}"
        )


if __name__ == "__main__":
    sys.exit(main())
