"""``ragtune index ...``: build, update, inspect and search indexes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ragtune.cli.progress import RichProgress, console
from ragtune.config import HybridRetrieverConfig, RagtuneConfig, load_config
from ragtune.errors import RetrievalError

if TYPE_CHECKING:
    from ragtune.index.location import IndexLocation

app = typer.Typer(help="Build, update, inspect and search indexes.", no_args_is_help=True)

_MODES = ("dense", "lexical", "hybrid")


def _config(path: Path | None) -> RagtuneConfig:
    return load_config(path)


def _location(index: Path, config: Path | None) -> IndexLocation:
    """The index a command names: a folder, or with a config whose ``index.store`` is
    pgvector, that schema (named by its schema name)."""
    return _config(config).index.location(index)


def _embedder_for_index(index: IndexLocation, config: RagtuneConfig | None = None) -> Any:
    """The index's own embedder (same model as it was built with; the config's backend)."""
    return (config or RagtuneConfig.model_validate(_manifest_embedder(index))).embedder_for_index(
        index
    )


def _manifest_embedder(index: IndexLocation) -> dict[str, Any]:
    from ragtune.index.location import read_index_manifest

    info = read_index_manifest(index).embedder
    backend = info.backend if info.backend in ("torch", "onnx", "onnx-int8") else "torch"
    return {"embedder": {"model": info.model or info.name, "backend": backend}}


def _print_report(report: Any, verb: str) -> None:
    m = report.manifest
    console.print(
        f"[bold]{verb}[/] {report.index}: {report.documents_added} document(s) added, "
        f"{report.documents_removed} removed, {report.documents_unchanged} unchanged, "
        f"{report.duplicates} duplicate(s) linked; {report.chunks_added} chunk(s) added, "
        f"{report.chunks_removed} removed in {report.seconds:.1f}s"
        + (f" (embedding {report.embed_seconds:.1f}s)" if report.embed_seconds else "")
    )
    if report.sources_removed:
        console.print(
            f"{report.sources_removed} source(s) unlinked; a document stays while another "
            "source holds the same text"
        )
    if report.pii:
        found = ", ".join(f"{k} {v}" for k, v in sorted(report.pii.items()))
        console.print(f"personal data replaced: {found}")
    if m is not None:
        console.print(
            f"index now holds {m.counts.get('documents', 0)} document(s), "
            f"{m.counts.get('chunks', 0)} chunk(s)"
        )
    else:
        console.print("nothing changed; the index was not rewritten")
    for skip in report.skipped:
        console.print(f"[yellow]skipped[/] {skip.source}: {skip.reason}")


@app.command("build")
def build(
    sources: list[str] = typer.Argument(
        ..., help="Files, folders or globs (.txt .md .html .pdf .jsonl)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Index folder to create (or rebuild); with a pgvector store, its schema's name.",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML config; defaults otherwise."
    ),
    tenant: str | None = typer.Option(
        None, "--tenant", "-t", help="Tenant that owns these documents."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Fail (and write nothing) if any source is skipped."
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local (this process) or ray: read, chunk and embed as Ray Data stages on the "
        "cluster at --ray-address or RAY_ADDRESS, else on a local Ray started for the build.",
    ),
    workers: int = typer.Option(
        2, "--workers", min=1, help="With --engine ray: embedding actors (one model each)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="With --engine ray: the cluster (host:port); else RAY_ADDRESS."
    ),
) -> None:
    """Build an index from documents. An index already at --out is replaced only on success."""
    from ragtune.indexing import LOCAL, IngestEngine, build_index

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"{engine!r}: use local or ray", param_hint="--engine")
    chosen: IngestEngine = LOCAL
    if engine == "ray":
        from ragtune.indexing_ray import RayDataEngine

        chosen = RayDataEngine(workers=workers, address=ray_address)
    cfg = _config(config)
    embedder = cfg.embedder.build()
    with RichProgress() as progress:
        report = build_index(
            sources,
            cfg.index.location(out),
            embedder=embedder,
            settings=cfg.build_settings(),
            tenant=tenant,
            strict=strict,
            progress=progress,
            engine=chosen,
        )
    _print_report(report, "built")


@app.command("add")
def add(
    sources: list[str] = typer.Argument(..., help="Files, folders or globs to add or refresh."),
    index: Path = typer.Option(..., "--index", "-i", help="Index folder."),
    config: Path | None = typer.Option(None, "--config", "-c"),
    tenant: str | None = typer.Option(None, "--tenant", "-t"),
    strict: bool = typer.Option(False, "--strict"),
) -> None:
    """Add documents (a changed file replaces its old version); nothing else is touched."""
    from ragtune.indexing import add_to_index

    location = _location(index, config)
    embedder = _embedder_for_index(location, _config(config) if config else None)
    with RichProgress() as progress:
        report = add_to_index(
            sources, location, embedder=embedder, tenant=tenant, strict=strict, progress=progress
        )
    _print_report(report, "updated")


@app.command("remove")
def remove(
    keys: list[str] = typer.Argument(
        ..., help="Document ids, JSONL ids, source paths or file paths."
    ),
    index: Path = typer.Option(..., "--index", "-i", help="Index folder."),
    tenant: str | None = typer.Option(None, "--tenant", "-t"),
    config: Path | None = typer.Option(None, "--config", "-c", help="Where the index is stored."),
) -> None:
    """Remove sources (by path) or documents (by id). If any key matches nothing, nothing is removed."""
    from ragtune.indexing import remove_from_index

    report = remove_from_index(keys, _location(index, config), tenant=tenant)
    _print_report(report, "updated")


@app.command("sync")
def sync(
    folder: Path = typer.Argument(..., help="The folder the index mirrors."),
    index: Path = typer.Argument(..., help="Index folder."),
    config: Path | None = typer.Option(None, "--config", "-c"),
    tenant: str | None = typer.Option(None, "--tenant", "-t"),
    strict: bool = typer.Option(False, "--strict"),
) -> None:
    """Add new and changed files of FOLDER, remove deleted ones; unchanged files are not re-read."""
    from ragtune.indexing import sync_index

    location = _location(index, config)
    embedder = _embedder_for_index(location, _config(config) if config else None)
    with RichProgress() as progress:
        report = sync_index(
            folder, location, embedder=embedder, tenant=tenant, strict=strict, progress=progress
        )
    _print_report(report, "synced")


@app.command("info")
def info(
    index: Path = typer.Argument(..., help="Index folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    documents: bool = typer.Option(False, "--documents", "-d", help="List the documents too."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Where the index is stored."),
) -> None:
    """Show what an index holds and how it was built."""
    from ragtune.index import IndexStore
    from ragtune.index.pgschema import PgStoreSettings

    location = _location(index, config)
    if isinstance(location, PgStoreSettings):
        _info_pg(location, as_json=as_json, documents=documents)
        return
    with IndexStore.open(index) as store:
        m = store.manifest
        size = sum(p.stat().st_size for p in (index / m.generation).rglob("*") if p.is_file())
        docs = list(store.db.documents()) if documents else []
        if as_json:
            data = m.to_dict() | {"bytes_on_disk": size, "vector_bytes": store.vectors.nbytes}
            if documents:
                data["documents"] = [asdict(d) for d in docs]
            typer.echo(json.dumps(data, indent=2))
            return
        e = m.embedder
        console.print(f"[bold]{index}[/] (format {m.format_version}, {m.generation})")
        console.print(
            f"  embedder   {e.name} ({e.dimension} dims, backend {e.backend}, "
            f"{'normalised' if e.normalized else 'raw'})"
        )
        ch = m.chunking
        console.print(
            f"  chunking   {ch['chunk_tokens']} tokens, overlap {ch['overlap_tokens']}, "
            f"title in text: {ch.get('title_in_text')}, vectors per {ch.get('dense_units', 'chunk')}"
        )
        console.print(
            f"  vectors    {_vector_kind(m.vectors)} ({store.vectors.nbytes / 1e6:.1f} MB in memory)"
        )
        lx = m.lexical
        console.print(
            f"  lexical    BM25 {lx['method']} k1={lx['k1']} b={lx['b']} "
            f"stemming={lx['stemming']} stopwords={lx['stopwords']}"
        )
        c = m.counts
        console.print(
            f"  holds      {c.get('documents', 0)} documents, {c.get('sources', 0)} sources, "
            f"{c.get('chunks', 0)} chunks, {c.get('vectors', 0)} vectors; {size / 1e6:.1f} MB on disk"
        )
        console.print(f"  tenants    {', '.join(f'{k}: {v}' for k, v in m.tenants.items()) or '-'}")
        console.print(
            f"  scrubbing  {'on' if m.ingest.get('scrub_pii') else 'off'}; replaced: "
            f"{', '.join(f'{k} {v}' for k, v in sorted(m.pii.items())) or 'nothing'}"
        )
        for d in docs:
            console.print(
                f"  {d.doc_id}  {d.n_chunks:4d} chunks  {d.title[:40]!r:42}  {d.sources[0] if d.sources else ''}"
            )


@app.command("search")
def search(
    index: Path = typer.Argument(..., help="Index folder."),
    query: str | None = typer.Argument(None, help="The query (or use --queries)."),
    k: int = typer.Option(5, "-k", min=1, max=1000, help="How many hits."),
    mode: str = typer.Option("hybrid", "--mode", "-m", help="dense, lexical or hybrid."),
    queries: Path | None = typer.Option(
        None, "--queries", "-q", help='JSONL of {"id", "question"}.'
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one line per query)."),
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Only this tenant's chunks."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Hybrid settings come from here."
    ),
) -> None:
    """Search an index, for one query or a batch of them."""
    from ragtune.config import DenseRetrieverConfig, LexicalRetrieverConfig
    from ragtune.index.location import open_index

    if mode not in _MODES:
        raise RetrievalError(f"unknown --mode {mode!r}; use dense, lexical or hybrid")
    if (query is None) == (queries is None):
        raise RetrievalError("give either a QUERY or --queries FILE.jsonl, not both or neither")
    cfg = _config(config) if config else None
    batch = list(_read_queries(queries)) if queries is not None else [(None, query or "")]
    location = _location(index, config)
    with open_index(location) as store:
        embedder = _embedder_for_index(location, cfg)
        hybrid = (
            cfg.retriever
            if cfg and isinstance(cfg.retriever, HybridRetrieverConfig)
            else HybridRetrieverConfig()
        )
        chosen: DenseRetrieverConfig | LexicalRetrieverConfig | HybridRetrieverConfig = hybrid
        if mode == "dense":
            chosen = DenseRetrieverConfig()
        elif mode == "lexical":
            chosen = LexicalRetrieverConfig()
        retriever = chosen.build(store, embedder)
        for qid, text in batch:
            passages = retriever.retrieve(text, k, tenant=tenant)
            hits = [
                {
                    "rank": p.rank,
                    "score": round(p.score, 6),
                    "chunk_id": p.chunk_id,
                    "source": p.source,
                    "start": p.start,
                    "end": p.end,
                    "text": p.text,
                }
                for p in passages
            ]
            if as_json or queries is not None:
                line = (
                    {"id": qid, "hits": hits}
                    if queries is not None
                    else {"query": text, "hits": hits}
                )
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                continue
            if not hits:
                console.print("no matching chunk")
            for p in passages:
                console.print(f"[bold]{p.rank}.[/] {p.score:.3f}  {p.source} [{p.start}:{p.end}]")
                snippet = " ".join(p.text.split())
                console.print(
                    f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}", highlight=False
                )


def _info_pg(location: Any, *, as_json: bool, documents: bool) -> None:
    from ragtune.index.pgstore import PgIndexStore

    with PgIndexStore.open(location) as store:
        m = store.manifest
        sizes = store.bytes_on_disk()
        docs = list(store.documents()) if documents else []
    if as_json:
        data = m.to_dict() | {"store": str(location), "bytes_on_disk": sizes}
        if documents:
            data["documents"] = [asdict(d) for d in docs]
        typer.echo(json.dumps(data, indent=2))
        return
    e, c = m.embedder, m.counts
    console.print(f"[bold]{location}[/] ({m.generation})")
    console.print(f"  embedder   {e.name} ({e.dimension} dims, backend {e.backend})")
    console.print(f"  vectors    {_vector_kind(m.vectors)} (pgvector, cosine)")
    console.print(
        f"  holds      {c.get('documents', 0)} documents, {c.get('sources', 0)} sources, "
        f"{c.get('chunks', 0)} chunks, {c.get('vectors', 0)} vectors; "
        f"{sum(sizes.values()) / 1e6:.1f} MB in tables and indexes"
    )
    console.print(f"  tenants    {', '.join(f'{k}: {v}' for k, v in m.tenants.items()) or '-'}")
    for d in docs:
        console.print(
            f"  {d.doc_id}  {d.n_chunks:4d} chunks  {d.title[:40]!r:42}  {d.sources[0] if d.sources else ''}"
        )


def _read_queries(path: Path) -> Iterator[tuple[str, str]]:
    """Validate the whole file first, so a bad line fails before any output."""
    if not path.is_file():
        raise RetrievalError(f"--queries {path}: no such file")
    rows, problems = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{lineno}: not valid JSON ({exc.msg})")
            continue
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("question"), str)
            or not item["question"].strip()
        ):
            problems.append(f'{path}:{lineno}: needs a non-empty string "question"')
            continue
        rows.append((str(item.get("id", lineno)), item["question"]))
    if problems:
        raise RetrievalError("bad query file:\n  " + "\n  ".join(problems[:20]))
    yield from rows


def _vector_kind(vectors: dict[str, Any]) -> str:
    """The manifest's vector index as a line: its kind and settings (``hnsw m=32 ...``); read
    by the same function as the index itself, so manifests of every format version show."""
    from ragtune.index.vectors import vector_spec_from_dict

    spec = asdict(vector_spec_from_dict(vectors))
    kind = spec.pop("type")
    return " ".join([str(kind), *(f"{k}={v}" for k, v in spec.items())])
