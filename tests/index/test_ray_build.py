"""Index builds on Ray Data (a real local Ray): the same index as the local engine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ragtune.errors import ClusterError
from ragtune.index import IndexStore
from ragtune.indexing import BuildSettings, build_index
from ragtune.serve.child import free_port

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(300)


def test_an_unreachable_cluster_is_a_clear_error_and_changes_nothing(
    corpus, tmp_path, tiny_embedder, small_settings, monkeypatch
):
    from ragtune.indexing_ray import RayDataEngine

    ray.shutdown()
    index = tmp_path / "idx"
    build_index([corpus], index, embedder=tiny_embedder, settings=small_settings)
    before = (index / "manifest.json").read_bytes()
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(ClusterError, match=f"no Ray cluster answers at {address}"):
        build_index(
            [corpus],
            index,
            embedder=tiny_embedder,
            settings=small_settings,
            engine=RayDataEngine(workers=1),
        )
    assert (index / "manifest.json").read_bytes() == before
    assert not ray.is_initialized()
    with pytest.raises(ClusterError, match="not host:port"):
        build_index(
            [corpus],
            tmp_path / "other",
            embedder=tiny_embedder,
            settings=small_settings,
            engine=RayDataEngine(address="nowhere"),
        )
    assert not (tmp_path / "other").exists()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}},
    )
    yield
    ray.shutdown()


def _mixed_corpus(folder: Path) -> Path:
    """Files of every kind, a duplicate, personal data, a JSONL file and one unreadable file."""
    folder.mkdir()
    words = " ".join(f"word{i}" for i in range(300))
    (folder / "returns.md").write_text(
        "# Returns\n\nReturn any item within 30 days. Mail jane.doe@example.com for labels.\n"
    )
    (folder / "copy-of-returns.md").write_text(
        "# Returns\n\nReturn any item within 30 days. Mail jane.doe@example.com for labels.\n"
    )
    (folder / "long.txt").write_text(f"A long manual. {words}. The end of the manual.\n")
    (folder / "page.html").write_text("<html><body><h1>Privacy</h1><p>Seven years.</p></body>")
    (folder / "faq.jsonl").write_text(
        json.dumps({"id": "q1", "title": "Hours", "text": "We open at nine."})
        + "\n"
        + json.dumps({"id": "q2", "title": "Phone", "text": "Call +1 415 555 0100."})
        + "\n"
    )
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02" * 50)
    return folder


def _contents(index: Path) -> tuple[dict[str, int], list[tuple[str, str, str, str]], np.ndarray]:
    """Counts, every chunk (chunk id, text, document, source) and every stored vector."""
    with IndexStore.open(index) as store:
        rows, _counts = store.db.vector_counts()
        passages = store.passages([int(r) for r in rows], [0.0] * len(rows))
        by_row = {p.chunk_id: p for p in passages}
        chunks = sorted((p.chunk_id, p.text, p.doc_id, p.source) for p in by_row.values())
        ids = store.vectors.ids()
        dimension = store.vectors.dimension
        # Scores against the unit vectors of each axis are the stored vectors themselves.
        axes = np.eye(dimension, dtype=np.float32)
        matrix = np.stack([store.vectors.scores(axis, np.sort(ids)) for axis in axes], axis=1)
        return dict(store.manifest.counts), chunks, matrix


@pytest.mark.parametrize("sentence_vectors", [False, True], ids=["chunk", "sentence"])
def test_ray_build_equals_the_local_build(tmp_path, tiny_embedder, local_ray, sentence_vectors):
    from ragtune.indexing_ray import RayDataEngine

    docs = _mixed_corpus(tmp_path / "docs")
    settings = BuildSettings(chunk_tokens=64, overlap_tokens=8, sentence_vectors=sentence_vectors)
    local = build_index(
        [docs], tmp_path / "local", embedder=tiny_embedder, settings=settings, tenant="acme"
    )
    on_ray = build_index(
        [docs],
        tmp_path / "ray",
        embedder=tiny_embedder,
        settings=settings,
        tenant="acme",
        engine=RayDataEngine(workers=2, files_per_batch=2),
    )
    for field in ("files", "documents_added", "duplicates", "chunks_added", "pii"):
        assert getattr(on_ray, field) == getattr(local, field), field
    assert sorted(s.source for s in on_ray.skipped) == sorted(s.source for s in local.skipped)
    assert local.duplicates == 1 and local.pii and local.skipped
    counts, chunks, vectors = _contents(tmp_path / "local")
    ray_counts, ray_chunks, ray_vectors = _contents(tmp_path / "ray")
    assert ray_counts == counts
    assert ray_chunks == chunks
    assert "jane.doe@example.com" not in json.dumps(ray_chunks)  # scrubbed in the workers
    assert ray_vectors.shape == vectors.shape
    np.testing.assert_allclose(ray_vectors, vectors, atol=1e-5)


def test_a_failed_ray_build_leaves_the_previous_index(
    tmp_path, corpus, tiny_embedder, small_settings, local_ray
):
    from ragtune.indexing_ray import RayDataEngine

    index = tmp_path / "idx"
    build_index([corpus], index, embedder=tiny_embedder, settings=small_settings)
    before = _contents(index)
    with pytest.raises(ClusterError, match="at least 1"):
        RayDataEngine(workers=0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("   \n")
    with pytest.raises(Exception, match="nothing to index"):
        build_index(
            [tmp_path / "empty"],
            index,
            embedder=tiny_embedder,
            settings=small_settings,
            engine=RayDataEngine(workers=1),
        )
    after = _contents(index)
    assert after[0] == before[0] and after[1] == before[1]


def test_cli_builds_on_ray(corpus, tmp_path, tiny_model_dir, local_ray):
    from ragtune.cli import app

    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"embedder: {{model: {tiny_model_dir}, device: cpu}}\n"
        "chunking: {chunk_tokens: 64, overlap_tokens: 8}\n"
    )
    index = tmp_path / "idx"
    result = CliRunner().invoke(
        app,
        [
            *("index", "build", str(corpus), "--out", str(index), "--config", str(config)),
            *("--engine", "ray", "--workers", "1"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "4 document(s) added" in result.output.replace("\n", " ")
    wrong = CliRunner().invoke(
        app, ["index", "build", str(corpus), "--out", str(index), "--engine", "spark"]
    )
    assert wrong.exit_code != 0 and "use local or ray" in wrong.output
    assert os.environ.get("RAY_ADDRESS") is None
