"""Helpers shared by the benchmark scripts: arguments, data, skip logic, timing, machine info.

Not a package (there is no ``benchmarks/__init__.py``): each script puts this folder on
``sys.path`` and imports ``_common``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from ragtune.config import RagtuneConfig
    from ragtune.index import Embedder, SentenceTransformerEmbedder
    from ragtune.indexing import BuildSettings, UpdateReport
    from ragtune.train.claims import Claim
    from ragtune.types import Passage

T = TypeVar("T")

# Everything runs offline on the embedded models; set before sentence-transformers loads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "squad-dev"
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"
DEFAULT_OUT = ROOT / "benchmarks" / "out"


# ---- arguments and data ---------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the squad-dev folder (passages.jsonl, questions.jsonl, corpus/)",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="ragtune config (YAML)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where JSON results and indexes go"
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=600.0,
        help="seconds to wait for a quiet machine before a timed run (0: do not wait)",
    )
    return p


def require_data(data: Path, needed: Sequence[str]) -> Path:
    """The data folder, or exit 0 with a 'skipped' message when it (or a file in it) is absent."""
    data = data.expanduser()
    missing = [name for name in needed if not (data / name).exists()]
    if not data.is_dir() or missing:
        what = data if not data.is_dir() else ", ".join(str(data / m) for m in missing)
        print(f"skipped: no data at {what}")
        sys.exit(0)
    return data.resolve()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class Question:
    """One SQuAD question with its gold passage and answer strings."""

    id: str
    text: str
    passage_id: str
    answers: tuple[str, ...]


def load_questions(data: Path, limit: int | None = None) -> list[Question]:
    rows = read_jsonl(data / "questions.jsonl")
    questions = [
        Question(r["id"], r["question"], r["passage_id"], tuple(r.get("answers") or ()))
        for r in rows
        if r.get("answerable", True)
    ]
    return questions[:limit] if limit else questions


def write_results(out: Path, name: str, results: Mapping[str, Any]) -> Path:
    """Write ``out/name.json`` and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# ---- numbers and tables ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def dir_size(path: Path) -> int:
    """Bytes in the files under ``path`` (or of the file itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- the machine ----------------------------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, load and library versions, for the results file."""
    cpu = platform.processor() or "unknown"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("unknown", "", "x86_64"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    versions = {}
    for name in ("torch", "transformers", "sentence_transformers", "faiss", "bm25s"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            versions[name] = "absent"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cpu_flags": [f for f in ("avx2", "avx512f", "avx512_vnni") if f" {f}" in flags],
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem / 2**30, 1),
        "load_average": load_average(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    ticks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ticks[int(entry.name)] = (int(fields[11]) + int(fields[12]), cmd.strip())
    return ticks


def busy_processes(interval: float = 2.0, threshold: float = 30.0) -> list[tuple[int, float, str]]:
    """Other processes using more than ``threshold`` % of a core over ``interval`` seconds."""
    hz = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks()
    time.sleep(interval)
    after = _cpu_ticks()
    me = os.getpid()
    busy = []
    for pid, (ticks, cmd) in after.items():
        if pid == me or pid not in before:
            continue
        share = 100.0 * (ticks - before[pid][0]) / hz / interval
        if share > threshold:
            busy.append((pid, round(share, 1), cmd[:120]))
    return busy


def wait_for_quiet(max_wait: float, *, threshold: float = 0.7, label: str = "") -> dict[str, Any]:
    """Wait (30 s steps, at most ``max_wait`` s) for the 1-minute load to fall below
    ``threshold`` with no other busy process; returns what was seen when the run started.

    Two cores are shared with other jobs: a timing taken under load is reported as such.
    """
    started = time.monotonic()
    while True:
        load = load_average()
        busy = busy_processes()
        quiet = load[0] < threshold and not busy
        waited = time.monotonic() - started
        if quiet or waited >= max_wait:
            if not quiet:
                print(
                    f"  [{label}] machine still busy after {waited:.0f}s "
                    f"(load {load[0]}, busy: {[b[:2] for b in busy]}); running anyway",
                    flush=True,
                )
            return {"load_average": load, "busy": busy, "quiet": quiet, "waited_s": round(waited)}
        print(
            f"  [{label}] waiting for a quiet machine: load {load[0]}, busy {[b[:2] for b in busy]}",
            flush=True,
        )
        time.sleep(30)


# ---- ragtune pieces the scripts share -------------------------------------------------------


class CachedQueryEmbedder:
    """A ``QueryEmbedder`` that answers from vectors embedded in batches beforehand.

    Quality benchmarks ask thousands of questions; embedding them in batches is much faster
    than one ``embed_query`` call each and gives the same vectors (mean pooling ignores the
    padding). Unknown queries fall through to the real embedder.
    """

    def __init__(self, embedder: Embedder, queries: Sequence[str]) -> None:
        self._embedder = embedder
        unique = list(dict.fromkeys(q.strip() for q in queries))
        vectors = embedder.embed(unique)
        self._vectors = {q: vectors[i] for i, q in enumerate(unique)}

    @property
    def name(self) -> str:
        return str(self._embedder.name)

    def embed_query(self, text: str) -> np.ndarray:
        vector = self._vectors.get(text.strip())
        return vector if vector is not None else self._embedder.embed_query(text)

    def max_difference(self, queries: Sequence[str]) -> float:
        """Largest element-wise gap between the cached and a fresh ``embed_query`` vector."""
        return max(
            float(np.abs(self.embed_query(q) - self._embedder.embed_query(q)).max())
            for q in queries
        )


def section_values(section: object, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A config section (a pydantic dataclass such as ``HybridRetrieverConfig``) as JSON
    values, spelled as in the YAML (paths as strings), without the fields in ``exclude``.

    Only ``RagtuneConfig`` itself is a pydantic model with ``model_dump``.
    """
    from pydantic import TypeAdapter

    values: dict[str, Any] = TypeAdapter(type(section)).dump_python(
        section, mode="json", exclude=set(exclude)
    )
    return values


def passage_id(passage: Passage) -> str:
    """The JSONL ``id`` of the document a retrieved chunk came from."""
    metadata = passage.provenance.metadata if passage.provenance is not None else {}
    return str(metadata.get("id", ""))


def _build_stamp(
    sources: Sequence[Path], settings: BuildSettings, embedder: SentenceTransformerEmbedder
) -> dict[str, Any]:
    """What an index was built from: reused only when all of it is the same."""
    from dataclasses import asdict

    stamp: dict[str, Any] = json.loads(
        json.dumps(
            {
                "sources": [str(s) for s in sources],
                "settings": asdict(settings),
                "embedder": [embedder.name, embedder.backend, embedder.model],
            },
            default=str,
        )
    )
    return stamp


def ensure_index(
    sources: Sequence[Path],
    index: Path,
    *,
    embedder: SentenceTransformerEmbedder,
    settings: BuildSettings,
    rebuild: bool,
) -> tuple[UpdateReport | None, bool]:
    """Build ``index`` from ``sources`` unless the same build is already there.

    Returns ``(UpdateReport or None, built)``. A ``<index>.sources.json`` file next to the
    index records the sources, build settings and embedder it was built with.
    """
    from ragtune.indexing import build_index

    stamp_file = index.with_name(index.name + ".sources.json")
    stamp = _build_stamp(sources, settings, embedder)
    if (
        not rebuild
        and (index / "manifest.json").is_file()
        and stamp_file.is_file()
        and json.loads(stamp_file.read_text()) == stamp
    ):
        return None, False
    stamp_file.unlink(missing_ok=True)
    report = build_index(list(sources), index, embedder=embedder, settings=settings)
    stamp_file.write_text(json.dumps(stamp))
    return report, True


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


# ---- the squad-dev article split of the grounding work ----------------------------------------


def article_part(title: str, seed: int = 0) -> str:
    """``held`` (about 30% of the articles, never trained or tuned on: the figures come from
    them), ``dev`` (about 10%: choosing variants and calibrating abstention) or ``train``.

    A seeded hash of the title, so the split does not depend on which other articles exist.
    ``held`` is the split of ``benchmarks/adapters.py`` (same hash, same share).
    """
    import hashlib

    def draw(salt: int) -> float:
        digest = hashlib.sha256(f"{salt}:{title}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    if draw(seed) < 0.3:
        return "held"
    return "dev" if draw(seed + 1) < 0.15 else "train"


def support_calibration_articles(titles: Sequence[str], share: float, seed: int = 0) -> set[str]:
    """The ``train`` articles whose claims calibrate the support model (never trained on):
    about ``share`` of ``titles`` by a seeded hash of the title, at least one when there are
    two or more (``scripts/train_support_model.py``; ``benchmarks/checker_auroc.py`` refits the
    older signal sets on the same claims)."""
    import hashlib

    def draw(title: str) -> float:
        digest = hashlib.sha256(f"support-calibration:{seed}:{title}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    chosen = {t for t in titles if draw(t) < share}
    if not chosen and len(titles) > 1:
        chosen = {min(titles, key=draw)}
    return chosen


def squad_claims(data: Path, articles: Callable[[str], bool], *, seed: int = 0) -> list[Claim]:
    """Every generated claim (:func:`ragtune.train.claims.build_claims`) of the answerable
    squad-dev questions of the articles ``articles(title)`` accepts."""
    from ragtune.train.claims import SourceQuestion, build_claims

    passages = {r["id"]: r["text"] for r in read_jsonl(data / "passages.jsonl")}
    questions = [
        SourceQuestion(r["id"], r["question"], tuple(r["answers"]), r["passage_id"], r["title"])
        for r in read_jsonl(data / "questions.jsonl")
        if r.get("answerable", True) and articles(r["title"])
    ]
    return build_claims(passages, questions, seed=seed)


def sample_claims(claims: Sequence[Claim], limit: int, seed: int = 0) -> list[Claim]:
    """Whole questions' claims in a seeded order until ``limit`` claims, in their first order."""
    import random
    from collections import defaultdict

    by_question: dict[str, list[int]] = defaultdict(list)
    for i, claim in enumerate(claims):
        by_question[claim.question_id].append(i)
    ids = sorted(by_question)
    random.Random(seed).shuffle(ids)
    keep: list[int] = []
    for qid in ids:
        if len(keep) >= limit:
            break
        keep += by_question[qid]
    return [claims[i] for i in sorted(keep)]


def write_article_split(data: Path, out: Path, *, seed: int = 0) -> dict[str, Path]:
    """Write ``{part}_{answerable|unanswerable}.jsonl`` under ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, source in (("answerable", "questions.jsonl"), ("unanswerable", "unanswerable.jsonl")):
        parts: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "held": []}
        for row in read_jsonl(data / source):
            parts[article_part(row["title"], seed)].append(row)
        for part, rows in parts.items():
            path = out / f"{part}_{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            files[f"{part}_{name}"] = path
    return files


def squad_index(data: Path, out: Path, config: RagtuneConfig) -> Path:
    """The index of every squad-dev passage (built once, cached under ``out/indexes``)."""
    index = out / "indexes" / "squad-passages"
    ensure_index(
        [data / "passages.jsonl"],
        index,
        embedder=config.embedder.build(),
        settings=config.build_settings(),
        rebuild=False,
    )
    return index
