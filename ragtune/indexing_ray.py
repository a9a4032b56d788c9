"""Index builds on Ray Data: read, scrub and chunk in Ray tasks, embed in a pool of actors.

``ragtune index build SRC --out STORE --engine ray`` builds the same index as the local
engine (same chunk ids, vectors within float rounding, same counts), with the per-file work
spread over a Ray cluster:

1. **read** (tasks): each file is loaded, scrubbed of personal data and chunked by
   :func:`ragtune.reading.read_file`, the very function the local build calls;
2. **embed** (an actor pool of ``workers`` actors, each holding one copy of the embedder; on
   a GPU each when the cluster has GPUs): every chunk's dense units are embedded;
3. **write** (this process): files come back in their order and go through the same
   admission (de-duplication, source links) and the same store update as a local build, in
   one transaction, so a failed build leaves the previous index.

Documents that turn out to be duplicates are embedded by the workers and then dropped here:
the workers cannot see the index, and a duplicate costs one embedding, not a wrong index.

The cluster is ``address``, else ``RAY_ADDRESS``, else a local Ray started for the build and
stopped after it. A Ray already initialised in this process (a notebook, a test) is used as
it is. On a cluster the workers must read the source files and the embedding model at the
same paths as this process (a shared folder); the store is written from here.

Ray is an optional dependency: ``pip install 'ragtune[ray]'``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.cluster import ray_session
from ragtune.errors import ClusterError
from ragtune.index.embedders import EmbedderSettings
from ragtune.reading import FileRead, ReadPlan, read_file

if TYPE_CHECKING:
    from ragtune.index.embedders import Embedder
    from ragtune.indexing import Progress, RunTally, StoreUpdate

__all__ = ["RayDataEngine"]


@dataclass(frozen=True)
class RayDataEngine:
    """Reads, chunks and embeds as Ray Data stages (see the module doc).

    ``workers`` is the number of embedding actors (one embedder each) and the most reading
    tasks at once; ``address`` a Ray cluster (``host:port`` or ``ray://host:port``), or None
    for ``RAY_ADDRESS`` and, without it, a local Ray started for the build.
    """

    workers: int = 2
    address: str | None = None
    files_per_batch: int = 4
    """Files an embedding actor takes at a time (larger batches pad less, stream less)."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ClusterError(f"workers must be at least 1, got {self.workers}")
        if self.files_per_batch < 1:
            raise ClusterError(f"files_per_batch must be at least 1, got {self.files_per_batch}")

    def ingest(
        self,
        update: StoreUpdate,
        files: Sequence[Path],
        embedder: Embedder,
        tenant: str | None,
        run: RunTally,
        progress: Progress,
    ) -> None:
        from ragtune.indexing import Admitted, admit, store

        if not files:
            return
        plan = ReadPlan.of(update.manifest)
        spec = _settings_of(embedder)
        admitted = Admitted()
        vectors: dict[str, np.ndarray] = {}
        progress.phase("reading and embedding on Ray", len(files))
        with ray_session(self.address):
            for read, per_document in self._stream(files, plan, spec, tenant):
                admit(update, read, tenant, run, admitted)
                for item, rows in zip(read.documents, per_document, strict=True):
                    if item.doc_id in admitted.pending and item.doc_id not in vectors:
                        vectors[item.doc_id] = rows
                progress.advance(1)
        counts = [
            len(plan.units(chunk))
            for item in admitted.pending.values()
            for chunk in item.chunks or ()
        ]
        dimension = int(update.manifest.embedder.dimension)
        matrix = (
            np.concatenate([vectors[doc_id] for doc_id in admitted.pending])
            if admitted.pending
            else np.zeros((0, dimension), dtype=np.float32)
        )
        store(update, admitted, counts, matrix, tenant, run)

    def _stream(
        self, files: Sequence[Path], plan: ReadPlan, spec: EmbedderSettings, tenant: str | None
    ) -> Iterator[tuple[FileRead, list[np.ndarray]]]:
        """Each file's read and its documents' vectors, in the order of ``files``."""
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True
        resources = ray.cluster_resources()
        gpus = 1 if resources.get("GPU", 0) >= 1 else 0
        have = resources.get("GPU" if gpus else "CPU", 0)
        if have < self.workers:
            raise ClusterError(
                f"{self.workers} embedding workers need {self.workers} "
                f"{'GPUs' if gpus else 'CPUs'} and the Ray cluster has {have:g}: ask for "
                f"at most {int(have)} workers (--workers), or add nodes"
            )
        items = [{"position": i, "path": str(path)} for i, path in enumerate(files)]
        dataset = (
            ray.data.from_items(items, override_num_blocks=min(len(items), 4 * self.workers))
            .map_batches(
                _read_batch,  # type: ignore[arg-type]  # Ray's stubs cannot express fn_kwargs
                fn_kwargs={"plan": plan, "embedder": spec, "tenant": tenant},
                batch_size=1,
                # Reading reserves no CPU: the embedding actors hold every CPU they may use,
                # and reading tasks that waited for one would starve the actors of input.
                num_cpus=0,
                compute=ray.data.TaskPoolStrategy(size=self.workers),
            )
            .map_batches(
                _EmbedActor,
                fn_constructor_kwargs={"embedder": spec, "plan": plan, "on_gpu": bool(gpus)},
                batch_size=self.files_per_batch,
                num_cpus=0 if gpus else 1,
                num_gpus=gpus,
                compute=ray.data.ActorPoolStrategy(size=self.workers),
            )
        )
        for expected, row in enumerate(dataset.iter_rows()):
            if int(row["position"]) != expected:
                raise ClusterError(
                    f"Ray returned file {row['position']} where {expected} was due; rerun "
                    "the build (nothing was written)"
                )
            read: FileRead = pickle.loads(row["read"])
            yield read, pickle.loads(row["vectors"])


# ---- what runs in Ray workers -------------------------------------------------------------


_CHUNKERS: dict[tuple[EmbedderSettings, ReadPlan], Any] = {}


def _read_batch(
    batch: dict[str, Any], *, plan: ReadPlan, embedder: EmbedderSettings, tenant: str | None
) -> dict[str, Any]:
    """Ray task: read and chunk the batch's files (a chunker kept per worker process)."""
    key = (embedder, plan)
    if key not in _CHUNKERS:
        _CHUNKERS[key] = plan.chunker(_build_embedder(embedder, on_gpu=False))
    chunker = _CHUNKERS[key]
    reads = [
        pickle.dumps(read_file(Path(str(path)), plan, chunker, tenant=tenant))
        for path in batch["path"]
    ]
    return {"position": list(batch["position"]), "read": reads}


class _EmbedActor:
    """Ray actor: one embedder; embeds the dense units of every chunk of a batch of files."""

    def __init__(self, embedder: EmbedderSettings, plan: ReadPlan, on_gpu: bool) -> None:
        import torch

        if not on_gpu:
            torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.embedder = _build_embedder(embedder, on_gpu=on_gpu)
        self.plan = plan

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        reads: list[FileRead] = [pickle.loads(raw) for raw in batch["read"]]
        texts_of = [
            [
                [text for chunk in item.chunks or () for text in self.plan.units(chunk)]
                for item in read.documents
            ]
            for read in reads
        ]
        # Overlapping chunks share sentences: each distinct text is embedded once.
        distinct = list(dict.fromkeys(t for doc in texts_of for texts in doc for t in texts))
        embedded = self.embedder.embed(distinct)
        row_of = {text: i for i, text in enumerate(distinct)}
        vectors = [
            pickle.dumps([embedded[[row_of[t] for t in texts]] for texts in documents])
            for documents in texts_of
        ]
        return {"position": list(batch["position"]), "read": batch["read"], "vectors": vectors}


def _build_embedder(settings: EmbedderSettings, *, on_gpu: bool) -> Any:
    from ragtune.index.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        settings.model,
        backend=settings.backend,
        batch_size=settings.batch_size,
        device="cuda" if on_gpu else "cpu",
        cache_dir=settings.cache_dir,
        query_backend=settings.query_backend,
    )


def _settings_of(embedder: Embedder) -> EmbedderSettings:
    how = getattr(embedder, "settings", None)
    if how is None:
        raise ClusterError(
            f"the embedder {embedder.name!r} cannot be rebuilt in Ray workers (it has no "
            "settings()); build with --engine local, or use a sentence-transformers embedder"
        )
    settings = how()
    assert isinstance(settings, EmbedderSettings)
    return settings
