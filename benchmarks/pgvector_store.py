"""Figure (issue 19): the pgvector index store against the folder store, at 1k and 100k chunks.

Both stores are built and queried side by side in one run, on the same machine, with the same
embedder and settings; every figure is given for each store and as a ratio pg/folder.

- **squad-dev passages** (1,065 passages, ``passages.jsonl``): each store is built with
  ``build_index`` and the config's settings (``configs/default.yaml``: exact vectors on both).
  Build time is the whole ``build_index`` call, and without its embedding (the report's
  ``embed_seconds``; the same work for both stores, done twice). Then recall@1 and recall@5
  (the gold passage among the top-k chunks' passages) over the answerable questions for
  dense, lexical and hybrid retrieval, and how much of each top 5 the two stores share.
- **100k chunks**: the scaled set of ``query_latency.py`` (``--copies`` copies of each passage,
  one chunk each, copy j's text ending in " [copy j]" and its vectors moved by gaussian noise
  (``--noise``, seed 0) and normalised; copy 0 is the original), written through the low-level
  update API (``IndexUpdate`` / ``PgIndexUpdate``) from vectors embedded once, so both stores
  hold the same chunks and vectors. The folder store is built with flat (exact) and HNSW
  vectors, PostgreSQL with an HNSW graph of the same parameters (``index.vectors`` of the
  config when it is HNSW, else HNSW's defaults). Build time is the writing alone (embedding
  excluded, it is done once beforehand). Top-5 agreement is the share of folder/flat's top 5
  (exact dense search; BM25 for lexical) that another index returns too, by chunk and by the
  passage behind the chunk (the copies of a passage are near-duplicates).

Both figures give bytes on disk per chunk: the index folder, or PostgreSQL's tables with their
indexes (``pg_total_relation_size``).

Latency is one ``retriever.retrieve(question, 5)`` call with the question's vector embedded
beforehand (so it times the store: search, fetch, fusion); embedding one question, the same for
both stores, is timed on its own. ``--queries`` questions, spread over the set, every (store,
mode) cell interleaved so load hits them alike, after ``--warmup`` untimed ones. Lexical
scores differ by design: the folder store ranks by BM25, PostgreSQL by ``ts_rank`` of the
query's terms (``english`` stemming and stop words), so lexical (and a little of hybrid) recall
is expected to differ; dense at 1k searches exactly on both and should agree.

PostgreSQL 16 with pgvector comes from the ``pgserver`` wheel, started in a temporary folder
with a quarter of the memory as ``shared_buffers`` (at most 4 GiB), ``maintenance_work_mem``
for the HNSW build (at most 2 GiB) and ``--threads`` - 1 parallel workers; the settings it ran
with are in the results. The server and every index are deleted at the end.

Goal: the pgvector store answers as well as the folder store (the same dense recall@5 at 1k;
HNSW top-5 agreement with exact search like the folder store's HNSW at 100k), and the figures
say what PostgreSQL costs over the folder store in query latency and build time.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/pgvector_store.py --data ../shared/data/squad-dev
    # a quick look (2k chunks instead of 100k, 30 timed queries, 200 questions for recall):
    .venv/bin/python benchmarks/pgvector_store.py --copies 2 --queries 30 --limit 200 --max-wait 0

Results go to ``benchmarks/out/pgvector_store.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

if TYPE_CHECKING:
    import numpy as np
    import psycopg
    from pgserver import PostgresServer

    from ragtune.config import HybridRetrieverConfig, VectorIndexConfig
    from ragtune.index import (
        IndexLocation,
        IndexStore,
        Manifest,
        PgIndexStore,
        PgStoreSettings,
        SentenceTransformerEmbedder,
        VectorIndexSpec,
    )
    from ragtune.indexing import BuildSettings
    from ragtune.retrieve.base import QueryEmbedder, Retriever
    from ragtune.types import Passage

    OpenIndex = IndexStore | PgIndexStore
    Tops = tuple[list[list[str]], list[list[str]]]
    """A cell's top 5 of every query: chunk ids, and the passages behind them."""

MODES = ("dense", "lexical", "hybrid")


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=500, help="questions timed per store and mode")
    p.add_argument("--warmup", type=int, default=30, help="untimed queries first")
    p.add_argument("--copies", type=int, default=94, help="copies of each passage at 100k")
    p.add_argument("--noise", type=float, default=0.01, help="per-dimension noise on copies")
    p.add_argument("--no-large", action="store_true", help="only the squad-dev passages")
    p.add_argument("--threads", type=int, default=2, help="torch, FAISS and PostgreSQL threads")
    p.add_argument("--limit", type=int, help="only the first N questions for recall")
    args = p.parse_args(argv)
    data = _common.require_data(args.data, ["passages.jsonl", "questions.jsonl"])
    try:
        import pgserver  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        print(f"skipped: pgserver/psycopg not installed ({exc}); pip install -e '.[dev]'")
        return 0

    import faiss
    import torch

    from ragtune import load_config
    from ragtune.config import HybridRetrieverConfig

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    config = load_config(args.config)
    embedder = config.embedder.build()
    settings = config.build_settings()
    hybrid = config.retriever
    if not isinstance(hybrid, HybridRetrieverConfig):
        hybrid = HybridRetrieverConfig()
    questions = _common.load_questions(data)
    step = max(1, len(questions) // args.queries)
    timed = [q.text for q in questions[::step][: args.queries]]
    questions = questions[: args.limit] if args.limit else questions
    started = time.perf_counter()
    query_embedder = _common.CachedQueryEmbedder(embedder, [q.text for q in questions] + timed)
    print(f"embedded {len(questions)} questions in {time.perf_counter() - started:.1f}s")

    results: dict[str, Any] = {
        "figure": "pgvector_store",
        "machine": _common.machine_info(),
        "config": str(args.config),
        "threads": args.threads,
        "hybrid": _common.section_values(hybrid, exclude={"index"}),
        "questions": len(questions),
        "queries": len(timed),
    }
    work = Path(tempfile.mkdtemp(prefix="ragtune-pgvector-"))
    try:
        with _postgres(work / "pgdata", _tuning(args.threads)) as (dsn, server):
            results["server"] = server
            bench = _Bench(dsn, work, embedder, query_embedder, hybrid, timed, args)
            results["squad"] = bench.squad(data, settings, questions)
            if not args.no_large:
                results["large"] = bench.large(data, settings, config.index.vectors)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = _common.write_results(args.out, "pgvector_store", results)
    _print_tables(results)
    print(f"\nresults: {path}")
    return 0


# ---- the server -------------------------------------------------------------------------------


def _tuning(threads: int) -> dict[str, str]:
    """Server settings for this machine; PostgreSQL's defaults (128 MB of buffers, 64 MB to build
    an index in) suit a small shared host, not an index server."""
    ram_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    workers = str(max(threads - 1, 0))  # the leader process works too
    return {
        # the usual quarter of the memory: both indexes stay in PostgreSQL's own buffers, as the
        # folder store's stay in this process
        "shared_buffers": f"{min(ram_mib // 4, 4096)}MB",
        # pgvector builds the HNSW graph in this memory; a graph that outgrows it builds many
        # times slower
        "maintenance_work_mem": f"{min(ram_mib // 8, 2048)}MB",
        "max_parallel_maintenance_workers": workers,
        "max_parallel_workers_per_gather": workers,
    }


@contextlib.contextmanager
def _postgres(pgdata: Path, tuning: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Start PostgreSQL (``pgserver``) in ``pgdata`` with ``tuning``; yield its DSN and what it
    runs; stop it and delete ``pgdata`` at the end."""
    import pgserver
    import psycopg

    first = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        with psycopg.connect(_dsn(first), autocommit=True) as conn:
            for name, value in tuning.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")  # constants of this script
    finally:
        first.cleanup()
    server = pgserver.get_server(pgdata, cleanup_mode="delete")  # shared_buffers needs a start
    try:
        dsn = _dsn(server)
        with psycopg.connect(dsn, autocommit=True) as conn:
            info = {
                "postgres": _value(conn, "SHOW server_version"),
                "pgvector": _value(
                    conn,
                    "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'",
                ),
                "settings": {n: _value(conn, f"SHOW {n}") for n in tuning},
            }
        print(f"PostgreSQL {info['postgres']}, pgvector {info['pgvector']}: {info['settings']}")
        yield dsn, info
    finally:
        server.cleanup()


def _value(conn: psycopg.Connection[Any], sql: str) -> Any:
    """The one value ``sql`` selects."""
    row = conn.execute(sql).fetchone()
    assert row is not None, f"no row from {sql}"
    return row[0]


def _dsn(server: PostgresServer) -> str:
    """The server's DSN without its password (the store's settings refuse one)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(server.get_uri())
    return make_conninfo("", **{k: v for k, v in params.items() if k != "password"})


# ---- the two figures ----------------------------------------------------------------------------


class _Bench:
    """What both figures share: the server, the scratch folder, the embedders and queries."""

    def __init__(
        self,
        dsn: str,
        work: Path,
        embedder: SentenceTransformerEmbedder,
        query_embedder: QueryEmbedder,
        hybrid: HybridRetrieverConfig,
        timed: list[str],
        args: argparse.Namespace,
    ) -> None:
        self.dsn, self.work, self.args = dsn, work, args
        self.embedder, self.query_embedder = embedder, query_embedder
        self.hybrid, self.timed = hybrid, timed

    def squad(
        self, data: Path, settings: BuildSettings, questions: list[_common.Question]
    ) -> dict[str, Any]:
        """Both stores built from ``passages.jsonl``: build time, recall, agreement, latency."""
        from ragtune.index import PgStoreSettings

        conditions: dict[str, Any] = {
            "build": _common.wait_for_quiet(self.args.max_wait, label="1k build")
        }
        locations: dict[str, IndexLocation] = {
            "folder": self.work / "squad-passages",
            "pg": PgStoreSettings(dsn=self.dsn, schema="squad_passages"),
        }
        build = {
            name: _timed_build(data / "passages.jsonl", where, self.embedder, settings)
            for name, where in locations.items()
        }
        with _opened(locations) as stores:
            figures: dict[str, Any] = {
                "counts": dict(stores["folder"].manifest.counts),
                "build": build,
                "bytes": {name: _bytes(store) for name, store in stores.items()},
                "recall": {},
                "top5_agreement": {},
            }
            cells = self._cells(stores)
            for mode in MODES:
                hits = {name: _recall_pass(r, questions) for name, m, r in cells if m == mode}
                figures["recall"][mode] = {
                    name: _recall(h, [q.passage_id for q in questions]) for name, h in hits.items()
                }
                figures["top5_agreement"][mode] = _overlap(
                    [[p.chunk_id for p in ps] for ps in hits["pg"]],
                    [[p.chunk_id for p in ps] for ps in hits["folder"]],
                )
                print(f"  1k/{mode}: {figures['recall'][mode]}", flush=True)
            conditions["latency"] = _common.wait_for_quiet(self.args.max_wait, label="1k latency")
            figures["latency"], _ = _latencies(cells, self.timed, self.args.warmup)
            figures["embed_query"] = _embed_stats(self.embedder, self.timed, self.args.warmup)
        conditions["load_after"] = _common.load_average()
        figures["conditions"] = conditions
        return figures

    def large(
        self, data: Path, settings: BuildSettings, configured: VectorIndexConfig
    ) -> dict[str, Any]:
        """The scaled set in folder/flat, folder/hnsw and pg/hnsw: build time, latency, agreement."""
        import query_latency

        from ragtune.index import FlatSpec, HNSWSpec, PgStoreSettings
        from ragtune.index.vectors import vector_spec_to_dict

        source = data / "passages.jsonl"
        started = time.perf_counter()
        passages, counts, base = query_latency._passages_and_vectors(
            source, self.embedder, settings
        )
        embed_seconds = time.perf_counter() - started
        hnsw = configured.spec() if configured.type == "hnsw" else HNSWSpec()
        schema = f"squad_x{self.args.copies}"
        locations: dict[str, tuple[Path | PgStoreSettings, VectorIndexSpec]] = {
            "folder/flat": (self.work / f"squad-x{self.args.copies}-flat", FlatSpec()),
            "folder/hnsw": (self.work / f"squad-x{self.args.copies}-hnsw", hnsw),
            "pg/hnsw": (PgStoreSettings(dsn=self.dsn, schema=schema), hnsw),
        }
        conditions: dict[str, Any] = {
            "build": _common.wait_for_quiet(self.args.max_wait, label="100k build")
        }
        build = {}
        for name, (where, spec) in locations.items():
            manifest = _scaled_manifest(self.embedder, settings, spec, self.args.copies)
            started = time.perf_counter()
            _write_scaled(where, manifest, source, passages, counts, base, self.args)
            build[name] = {"seconds": round(time.perf_counter() - started, 2)}
            print(f"built {name} in {build[name]['seconds']:.1f}s", flush=True)
        with _opened({n: w for n, (w, _) in locations.items()}) as stores:
            manifest = stores["folder/flat"].manifest
            figures: dict[str, Any] = {
                "copies": self.args.copies,
                "noise": self.args.noise,
                "counts": dict(manifest.counts),
                "vectors": {n: vector_spec_to_dict(s) for n, (_, s) in locations.items()},
                "embed_seconds": round(embed_seconds, 2),
                "build": build,
                "bytes": {name: _bytes(store) for name, store in stores.items()},
            }
            # folder/hnsw searches the same BM25 index as folder/flat
            cells = [c for c in self._cells(stores) if c[:2] != ("folder/hnsw", "lexical")]
            conditions["latency"] = _common.wait_for_quiet(self.args.max_wait, label="100k latency")
            figures["latency"], tops = _latencies(cells, self.timed, self.args.warmup)
        figures["top5_shared_with_flat"] = {
            f"{name}/{mode}": {
                "chunks": _overlap(tops[(name, mode)][0], tops[("folder/flat", mode)][0]),
                "passages": _overlap(tops[(name, mode)][1], tops[("folder/flat", mode)][1]),
            }
            for name, mode in tops
            if name != "folder/flat" and ("folder/flat", mode) in tops
        }
        conditions["load_after"] = _common.load_average()
        figures["conditions"] = conditions
        return figures

    def _cells(self, stores: dict[str, OpenIndex]) -> list[tuple[str, str, Retriever]]:
        """(store, mode, retriever) for every store and mode."""
        from ragtune.config import DenseRetrieverConfig, LexicalRetrieverConfig

        cells: list[tuple[str, str, Retriever]] = []
        for name, store in stores.items():
            cells += [
                (name, "dense", DenseRetrieverConfig().build(store, self.query_embedder)),
                (name, "lexical", LexicalRetrieverConfig().build(store)),
                (name, "hybrid", self.hybrid.build(store, self.query_embedder)),
            ]
        return cells


@contextlib.contextmanager
def _opened(locations: Mapping[str, IndexLocation]) -> Iterator[dict[str, OpenIndex]]:
    from ragtune.index import open_index

    stores: dict[str, OpenIndex] = {}
    try:
        for name, where in locations.items():
            stores[name] = open_index(where)
        yield stores
    finally:
        for store in stores.values():
            store.close()


def _timed_build(
    source: Path,
    where: IndexLocation,
    embedder: SentenceTransformerEmbedder,
    settings: BuildSettings,
) -> dict[str, float]:
    from ragtune.indexing import build_index

    started = time.perf_counter()
    report = build_index([source], where, embedder=embedder, settings=settings)
    seconds = time.perf_counter() - started
    print(f"built {where} in {seconds:.1f}s (embedding {report.embed_seconds:.1f}s)", flush=True)
    return {
        "seconds": round(seconds, 2),
        "embed_seconds": round(report.embed_seconds, 2),
        "store_seconds": round(seconds - report.embed_seconds, 2),
    }


def _bytes(store: OpenIndex) -> dict[str, int]:
    """Bytes the index takes: the folder, or each PostgreSQL table with its indexes."""
    if hasattr(store, "bytes_on_disk"):
        parts = store.bytes_on_disk()
        return {**parts, "total": sum(parts.values())}
    return {"total": _common.dir_size(Path(store.path))}


# ---- the 100k set, written the way query_latency.py writes it --------------------------------


def _scaled_manifest(
    embedder: SentenceTransformerEmbedder,
    settings: BuildSettings,
    spec: VectorIndexSpec,
    copies: int,
) -> Manifest:
    from ragtune.index import EmbedderInfo, Manifest
    from ragtune.index.vectors import vector_spec_to_dict

    sentences = settings.sentence_vectors
    return Manifest(
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


def _write_scaled(
    where: Path | PgStoreSettings,
    manifest: Manifest,
    source: Path,
    passages: list[dict[str, Any]],
    counts: np.ndarray,
    base: np.ndarray,
    args: argparse.Namespace,
) -> None:
    """Write ``args.copies`` noisy copies of every passage into a new index at ``where`` (a
    folder or a PostgreSQL schema): the loop of ``query_latency._build_scaled``, on either
    store's update."""
    import hashlib

    import numpy as np

    from ragtune.index import IndexUpdate, PgStoreSettings
    from ragtune.index.chunkdb import SourceRecord
    from ragtune.index.pgupdate import PgIndexUpdate
    from ragtune.index.units import vector_ids
    from ragtune.types import Chunk

    stat = source.stat()
    rng = np.random.default_rng(0)
    now = time.time()
    opened = (
        PgIndexUpdate(where, new=manifest)
        if isinstance(where, PgStoreSettings)
        else IndexUpdate(where, new=manifest)
    )
    with opened as update:
        for copy in range(args.copies):
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
            vectors = base if copy == 0 else base + rng.normal(0.0, args.noise, base.shape)
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = vector_ids(np.asarray(rows, dtype=np.int64), counts)
            update.vectors.add(ids, vectors.astype(np.float32))
        update.commit()


# ---- measuring --------------------------------------------------------------------------------


def _recall_pass(retriever: Retriever, questions: list[_common.Question]) -> list[list[Passage]]:
    return [retriever.retrieve(q.text, 5) for q in questions]


def _recall(hits: list[list[Passage]], gold: list[str]) -> dict[str, float]:
    """Recall@1 and @5: the gold passage among the top-k chunks' passages."""
    ranked = [[_common.passage_id(p) for p in ps] for ps in hits]
    return {
        f"recall@{k}": round(
            sum(g in r[:k] for r, g in zip(ranked, gold, strict=True)) / len(gold), 4
        )
        for k in (1, 5)
    }


def _overlap(got: list[list[str]], reference: list[list[str]]) -> float:
    """Mean share of each reference top 5 that ``got`` also returned (1 where both are empty)."""
    shares = [
        len(set(a) & set(b)) / len(set(b)) if b else float(not a)
        for a, b in zip(got, reference, strict=True)
    ]
    return round(sum(shares) / max(len(shares), 1), 4)


def _latencies(
    cells: list[tuple[str, str, Retriever]], queries: list[str], warmup: int
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], Tops]]:
    """Time every (store, mode) on every query, interleaved so load hits them alike; returns
    the stats and each cell's top 5s (chunk ids, passage ids)."""
    for query in queries[:warmup]:
        for _name, _mode, retriever in cells:
            retriever.retrieve(query, 5)
    times: dict[tuple[str, str], list[float]] = {(n, m): [] for n, m, _ in cells}
    tops: dict[tuple[str, str], Tops] = {(n, m): ([], []) for n, m, _ in cells}
    clock = time.perf_counter
    for i, query in enumerate(queries):
        shift = i % len(cells)
        for name, mode, retriever in cells[shift:] + cells[:shift]:
            started = clock()
            hits = retriever.retrieve(query, 5)
            times[(name, mode)].append(clock() - started)
            tops[(name, mode)][0].append([p.chunk_id for p in hits])
            tops[(name, mode)][1].append([_common.passage_id(p) for p in hits])
    stats: dict[str, dict[str, Any]] = {}
    for (name, mode), seconds in times.items():
        stats.setdefault(name, {})[mode] = _stats(seconds)
    return stats, tops


def _embed_stats(embedder: QueryEmbedder, queries: list[str], warmup: int) -> dict[str, float]:
    for query in queries[:warmup]:
        embedder.embed_query(query)
    seconds = []
    for query in queries:
        started = time.perf_counter()
        embedder.embed_query(query)
        seconds.append(time.perf_counter() - started)
    return _stats(seconds)


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(_common.percentile(ms, 50), 2),
        "p95_ms": round(_common.percentile(ms, 95), 2),
        "mean_ms": round(sum(ms) / max(len(ms), 1), 2),
        "n": len(ms),
    }


# ---- tables -----------------------------------------------------------------------------------


def _ratio(pg: float, folder: float) -> str:
    return f"{pg / folder:.2f}" if folder and folder == folder else "-"  # not 0, not NaN


def _print_tables(results: dict[str, Any]) -> None:
    embed, server = results["squad"]["embed_query"], results["server"]
    print(
        f"\nEmbedding one question (not in the latencies below): p50 {embed['p50_ms']:.2f} ms, "
        f"p95 {embed['p95_ms']:.2f} ms. PostgreSQL {server['postgres']}, pgvector "
        f"{server['pgvector']}, {server['settings']}"
    )
    _print_squad(results["squad"], results)
    if "large" in results:
        _print_large(results["large"])


def _print_squad(squad: dict[str, Any], results: dict[str, Any]) -> None:
    print(
        f"\n### squad-dev passages ({squad['counts']['chunks']} chunks, "
        f"{squad['counts'].get('vectors', '?')} vectors; {results['questions']} questions, "
        f"{results['queries']} timed, k=5, {results['threads']} threads)\n"
    )
    f, g = squad["build"]["folder"], squad["build"]["pg"]
    rows: list[list[Any]] = [
        [f"build {what}", f[key], g[key], _ratio(g[key], f[key])]
        for what, key in (
            ("s", "seconds"),
            ("s, embedding", "embed_seconds"),
            ("s, without embedding", "store_seconds"),
        )
    ]
    for mode in MODES:
        r = squad["recall"][mode]
        rows += [
            [f"{mode} {k}", r["folder"][k], r["pg"][k], _ratio(r["pg"][k], r["folder"][k])]
            for k in ("recall@1", "recall@5")
        ]
        rows.append([f"{mode} top 5 shared", "", squad["top5_agreement"][mode], ""])
    rows += _latency_rows(squad["latency"], ["folder", "pg"], lambda c: _ratio(c[1], c[0]))
    rows.append(_bytes_row(squad["bytes"], ["folder", "pg"], squad["counts"]["chunks"]))
    print(_common.markdown_table(["", "folder", "pgvector", "pg/folder"], rows))


def _print_large(large: dict[str, Any]) -> None:
    names = ["folder/flat", "folder/hnsw", "pg/hnsw"]
    print(
        f"\n### {large['counts']['chunks']} chunks, {large['counts'].get('vectors', '?')} "
        f"vectors ({large['copies']} copies of each passage; embedded once in "
        f"{large['embed_seconds']:.0f}s, not in the build times)\n"
    )

    def ratios(cols: list[float]) -> str:
        return f"{_ratio(cols[2], cols[0])} / {_ratio(cols[2], cols[1])}"

    seconds = [large["build"][n]["seconds"] for n in names]
    rows: list[list[Any]] = [["build s", *seconds, ratios(seconds)]]
    rows += _latency_rows(large["latency"], names, ratios)
    rows.append(_bytes_row(large["bytes"], names, large["counts"]["chunks"]))
    print(_common.markdown_table(["", *names, "pg/folder flat, pg/folder hnsw"], rows))
    print()
    for key, value in large["top5_shared_with_flat"].items():
        print(
            f"{key}: share of folder/flat's top 5 returned too: chunks "
            f"{value['chunks']:.3f}, passages {value['passages']:.3f}"
        )


def _latency_rows(
    latency: dict[str, Any], names: list[str], ratio: Callable[[list[float]], str]
) -> list[list[Any]]:
    """p50 and p95 of each mode; a store not timed in a mode (folder/hnsw's lexical search is
    folder/flat's) shows "-"."""
    rows = []
    for mode in MODES:
        for stat in ("p50_ms", "p95_ms"):
            cols = [latency[n][mode][stat] if mode in latency[n] else float("nan") for n in names]
            shown = [c if c == c else "-" for c in cols]
            rows.append([f"{mode} {stat.replace('_', ' ')}", *shown, ratio(cols)])
    return rows


def _bytes_row(sizes: dict[str, Any], names: list[str], chunks: int) -> list[Any]:
    per_chunk = [round(sizes[n]["total"] / max(chunks, 1)) for n in names]
    return ["bytes per chunk", *per_chunk, ""]


if __name__ == "__main__":
    sys.exit(main())
