"""Where the adapter registry keeps its files: a folder, or object storage through fsspec.

The registry (:mod:`ragtune.generate.registry`) needs five things of its storage, and both kinds
below give them with the same guarantees:

- **a pointer replaced by compare-and-swap**: :meth:`read` returns a file's text with a tag of
  that exact content; :meth:`create` writes only where nothing is, :meth:`swap` only where the
  tag still holds. Two processes promoting at once cannot both win, and a reader sees the old or
  the new pointer, never a torn one;
- **immutable versions published whole**: :meth:`publish` allocates the next version number and
  stores a staged folder under it; the card (``adapter.json``) goes last, and a version without a
  card is not a version, so a crash mid-upload leaves nothing a reader would load;
- **an append-only history** (:meth:`append_event`, :meth:`events`);
- **listing** of tenants, names and versions;
- **a local folder for each version** (:meth:`version_folder`), which the model loader reads.

:class:`FolderStorage` is a folder (local, or shared between machines over NFS): locks with
``flock``, writes with write-fsync-rename. :class:`S3Storage` is an ``s3://`` bucket through
s3fs: the pointer's tag is its ETag and is read in the same GET as its content, ``create`` is a
PUT with ``If-None-Match: *`` and ``swap`` a PUT with ``If-Match: <etag>`` (S3's conditional
writes, 2024; MinIO and Ceph RGW have them too), version numbers are claimed with a conditional
create, the history is one object per event (object storage has no append; events are named
by the pointer write they came with, so they read back in that order), and versions are
downloaded into a local cache (they never change once their card is written). Other fsspec
protocols are refused by :func:`open_storage`: fsspec's generic ``mode="create"`` checks and then
writes, which two writers can both pass.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from ragtune.durable import fsync_dir, write_atomic
from ragtune.errors import AdapterError, RegistryUnavailableError

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_POINTER_MAX_AGE",
    "DEFAULT_ROOT",
    "MAX_POINTER_AGE",
    "Blob",
    "FolderStorage",
    "RegistryStorage",
    "S3Storage",
    "is_url",
    "open_storage",
]

DEFAULT_ROOT = "adapters"
"""``adapters.root``'s default: a folder relative to the working directory."""
DEFAULT_CACHE = Path(".ragtune/adapter-cache")
"""``adapters.cache``'s default (relative to the working directory)."""
DEFAULT_POINTER_MAX_AGE = 0.0
"""``adapters.pointer_max_age``'s default: every served request reads the pointer."""
MAX_POINTER_AGE = 3600.0
"""The longest ``pointer_max_age`` (seconds): beyond an hour a promotion would hardly arrive."""
CARD = "adapter.json"
"""The file that makes a version a version: written last (same as ``adapters.CARD_FILE``)."""
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_HISTORY_FILE = "history.jsonl"
_HISTORY_DIR = "history"
_CLAIM_TRIES = 100
_CONNECT_SECONDS = 3
_READ_SECONDS = 20
_STALE_STAGING_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Blob:
    """A small file's text and a tag naming that exact content (a hash, or an S3 ETag)."""

    text: str
    tag: str


class RegistryStorage(Protocol):
    """What the adapter registry stores its files in. Keys are ``/``-separated, relative to the
    registry's root: ``tenant/name/current.json``."""

    @property
    def location(self) -> str:
        """The root, as the user wrote it (for messages)."""
        ...

    def read(self, key: str) -> Blob | None:
        """The file's text and tag, or None where there is no such file."""
        ...

    def create(self, key: str, text: str) -> bool:
        """Write ``text`` only if ``key`` does not exist; False (nothing written) if it does."""
        ...

    def swap(self, key: str, text: str, tag: str) -> bool:
        """Replace ``key`` only if it still holds the content ``tag`` names; False otherwise."""
        ...

    def children(self, key: str) -> list[str]:
        """The names of the folders directly under ``key`` (``""``: the root), sorted, without
        hidden ones; empty where ``key`` does not exist."""
        ...

    def versions(self, name_key: str) -> list[int]:
        """The published versions of ``tenant/name`` (those with a card), ascending."""
        ...

    def publish(self, name_key: str, staged: Path, card_for: Callable[[int], str]) -> int:
        """Store the folder ``staged`` as the next version of ``name_key``, its card
        ``card_for(version)`` written last; returns the version number. ``staged`` is left in
        place for the caller to remove."""
        ...

    def staging_folder(self, name_key: str) -> Path:
        """A new empty local folder to stage a version in before :meth:`publish`."""
        ...

    def version_folder(self, name_key: str, version: int) -> Path | None:
        """A local folder holding that published version's files (read it, never write it);
        None where the version is not published (no card)."""
        ...

    def card_text(self, name_key: str, version: int) -> str | None:
        """The published version's card (its ``adapter.json``) without its other files; None
        where the version is not published."""
        ...

    def append_event(self, name_key: str, line: str, seq: int) -> None:
        """Add one line (a JSON object) to ``name_key``'s history, durably; ``seq`` is the
        pointer write it belongs to (events are read back in ``seq`` order)."""
        ...

    def events(self, name_key: str) -> list[str]:
        """The history's lines, oldest first."""
        ...


def is_url(root: str | Path) -> bool:
    """True for an object-storage root (``s3://bucket/prefix``); a path otherwise.

    >>> is_url("s3://models/adapters"), is_url("adapters"), is_url("file:///srv/adapters")
    (True, False, False)
    """
    text = str(root)
    return "://" in text and folder_root(text) is None


def folder_root(root: str | Path) -> Path | None:
    """The folder a folder root names (``file://`` and ``file://localhost`` stripped), or None
    for an object-storage URL.

    >>> folder_root("file:///srv/adapters"), folder_root("adapters"), folder_root("s3://b/a")
    (PosixPath('/srv/adapters'), PosixPath('adapters'), None)
    """
    text = str(root)
    for scheme in ("file://localhost/", "file:///"):
        if text.startswith(scheme):
            return Path("/" + text.removeprefix(scheme))
    if "://" in text:
        return None
    return Path(text)


def check_root(root: str | Path) -> None:
    """Refuse an ``adapters.root`` no storage can open, naming the fix (:class:`AdapterError`):
    another protocol than ``s3://``, a URL without a bucket, a URL with one slash
    (``s3:/bucket``, which would otherwise be a folder named ``s3:``), ``file:`` without ``///``.
    Pure: it reaches nothing, so a config can be validated offline."""
    text = str(root)
    if folder_root(text) is not None:
        if text.startswith("file:") and not text.startswith(("file:///", "file://localhost/")):
            raise AdapterError(f"adapters.root {text!r}: write file:///absolute/path")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text) and not text.startswith("file:"):
            raise AdapterError(
                f"adapters.root {text!r} looks like a URL with one slash: write "
                f"{text.split(':', 1)[0]}://bucket/prefix, or a folder path without a colon"
            )
        return
    protocol, rest = text.split("://", 1)
    if protocol.lower() not in ("s3", "s3a"):
        raise AdapterError(
            f"adapters.root {text!r}: a registry on {protocol}:// is not supported, because its "
            "pointer needs atomic conditional writes that ragtune only drives on S3 (s3://, "
            "also MinIO and Ceph); use s3://bucket/prefix, or a folder shared by every replica"
        )
    if not rest.strip("/"):
        raise AdapterError(f"adapters.root {text!r} names no bucket: write s3://bucket/prefix")


def open_storage(root: str | Path, cache: Path) -> RegistryStorage:
    """The storage for an ``adapters.root``: a folder, or ``s3://bucket/prefix``.

    ``cache`` is the local folder object-storage versions are downloaded to (unused for a folder).
    Raises :class:`AdapterError` for a root :func:`check_root` refuses, or when s3fs is not
    installed.
    """
    check_root(root)
    folder = folder_root(root)
    if folder is not None:
        return FolderStorage(folder)
    return S3Storage(str(root), cache)


def _tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FolderStorage:
    """The registry in a folder: ``flock`` for writers, write-fsync-rename for every file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def read(self, key: str) -> Blob | None:
        try:
            data = (self.root / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Blob(data.decode("utf-8", errors="replace"), _tag(data))

    def create(self, key: str, text: str) -> bool:
        path = self.root / key
        with _flock(path.parent):
            if path.exists():
                return False
            write_atomic(path, text)
        return True

    def swap(self, key: str, text: str, tag: str) -> bool:
        path = self.root / key
        with _flock(path.parent):
            try:
                if _tag(path.read_bytes()) != tag:
                    return False
            except FileNotFoundError:
                return False
            write_atomic(path, text)
        return True

    def children(self, key: str) -> list[str]:
        folder = self.root / key if key else self.root
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != ".")

    def versions(self, name_key: str) -> list[int]:
        folder = self.root / name_key
        if not folder.is_dir():
            return []
        found = []
        for child in folder.iterdir():
            match = _VERSION.match(child.name)
            if match and (child / CARD).is_file():
                found.append(int(match[1]))
        return sorted(found)

    def publish(self, name_key: str, staged: Path, card_for: Callable[[int], str]) -> int:
        folder = self.root / name_key
        with _flock(folder):
            version = (self.versions(name_key) or [0])[-1] + 1
            write_atomic(staged / CARD, card_for(version))
            target = folder / f"v{version}"
            shutil.rmtree(target, ignore_errors=True)  # a card-less leftover is not a version
            os.replace(staged, target)  # one rename: the whole version appears at once
        fsync_dir(folder)
        return version

    def staging_folder(self, name_key: str) -> Path:
        folder = self.root / name_key
        folder.mkdir(parents=True, exist_ok=True)
        staged = folder / f".staging-{uuid.uuid4().hex}"  # same disk: publish is one rename
        staged.mkdir()
        return staged

    def version_folder(self, name_key: str, version: int) -> Path | None:
        folder = self.root / name_key / f"v{version}"
        return folder if (folder / CARD).is_file() else None

    def card_text(self, name_key: str, version: int) -> str | None:
        try:
            return (self.root / name_key / f"v{version}" / CARD).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None

    def append_event(self, name_key: str, line: str, seq: int) -> None:
        path = self.root / name_key / _HISTORY_FILE
        with _flock(path.parent), open(path, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def events(self, name_key: str) -> list[str]:
        try:
            text = (self.root / name_key / _HISTORY_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return text.splitlines()


class S3Storage:
    """The registry in an S3 bucket (AWS, MinIO, Ceph RGW) through s3fs.

    Credentials and endpoint come from the usual places (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for MinIO or a local server, ``~/.aws``).
    Versions are downloaded to ``cache/<hash of endpoint and root>/tenant/name/vN`` and read
    from there: a published version never changes, so each process compares the cached card with
    the bucket's once (one GET; a prefix emptied and filled again is downloaded anew) and then
    reads nothing but the pointer. Timeouts are short (connect 3 s, read 20 s, 2 attempts), so
    an outage fails a lookup in seconds and the pool keeps serving the versions it holds.
    """

    def __init__(self, url: str, cache: Path) -> None:
        try:
            import s3fs
        except ImportError as exc:
            raise AdapterError(
                f"adapters.root {url!r} is on S3, which needs s3fs: pip install 'ragtune[s3]'"
            ) from exc
        self.url = url.rstrip("/")
        self._prefix = self.url.split("://", 1)[1].strip("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or ""
        self.fs = s3fs.S3FileSystem(
            endpoint_url=endpoint or None,
            skip_instance_cache=True,
            # A request waits on the pointer read: an unreachable endpoint must fail in seconds,
            # not after botocore's default minute of retries (the pool then serves what it has).
            config_kwargs={
                "connect_timeout": _CONNECT_SECONDS,
                "read_timeout": _READ_SECONDS,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
        )
        # The same bucket name on another endpoint (staging MinIO, production S3) is another
        # registry: its versions must not share a cache folder.
        digest = hashlib.sha256(f"{endpoint}|{self.url}".encode()).hexdigest()[:16]
        self.cache = cache / digest
        self._checked: set[tuple[str, int]] = set()
        """Versions whose cached card this process compared with the bucket's."""
        self._cards: dict[tuple[str, int], str] = {}
        """Cards read by :meth:`card_text` (a front end's per-request check), kept: immutable."""

    @property
    def location(self) -> str:
        return self.url

    def _path(self, key: str) -> str:
        return f"{self._prefix}/{key}" if key else self._prefix

    def read(self, key: str) -> Blob | None:
        from fsspec.asyn import sync

        bucket, name, _ = self.fs.split_path(self._path(key))

        async def get() -> tuple[bytes, str]:
            reply = await self.fs._call_s3("get_object", Bucket=bucket, Key=name)
            async with reply["Body"] as body:
                data = await body.read()
            return data, str(reply["ETag"])  # content and tag from one response

        try:
            data, etag = self._call(lambda: sync(self.fs.loop, get))
        except FileNotFoundError:
            return None
        return Blob(data.decode("utf-8", errors="replace"), etag)

    def create(self, key: str, text: str) -> bool:
        return self._put(key, text, {"IfNoneMatch": "*"})

    def swap(self, key: str, text: str, tag: str) -> bool:
        return self._put(key, text, {"IfMatch": tag})

    def _put(self, key: str, text: str, condition: dict[str, str]) -> bool:
        bucket, name, _ = self.fs.split_path(self._path(key))
        try:
            self._call(
                lambda: self.fs.call_s3(
                    "put_object", Bucket=bucket, Key=name, Body=text.encode(), **condition
                )
            )
        except FileExistsError:
            return False  # If-None-Match met an object
        except FileNotFoundError:
            return False  # If-Match met no object (a missing bucket raised in _call)
        except OSError as exc:
            if _lost_race(exc):
                return False
            raise
        self.fs.invalidate_cache(self._path(key))
        return True

    def children(self, key: str) -> list[str]:
        try:
            entries = self._call(lambda: self.fs.ls(self._path(key), detail=True, refresh=True))
        except FileNotFoundError:
            return []
        names = (str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries)
        kinds = (e.get("type") for e in entries)
        return sorted(
            n for n, k in zip(names, kinds, strict=True) if k == "directory" and n[0] != "."
        )

    def versions(self, name_key: str) -> list[int]:
        pattern = self._path(f"{name_key}/v*/{CARD}")
        found = self._call(lambda: self.fs.glob(pattern, refresh=True))
        numbers = []
        for path in found:
            match = _VERSION.match(str(path).rsplit("/", 2)[-2])
            if match:
                numbers.append(int(match[1]))
        return sorted(numbers)

    def publish(self, name_key: str, staged: Path, card_for: Callable[[int], str]) -> int:
        version = (self.versions(name_key) or [0])[-1] + 1
        claim = json.dumps({"claimed": time.time(), "by": uuid.uuid4().hex})
        for _ in range(_CLAIM_TRIES):
            if self.create(f"{name_key}/v{version}/.claim", claim):
                break
            version += 1  # claimed by another writer, or a crashed upload: never reused
        else:
            raise AdapterError(
                f"{self.url}/{name_key}: {_CLAIM_TRIES} version numbers in a row were claimed by "
                "other writers; try again"
            )
        files = [p for p in sorted(staged.rglob("*")) if p.is_file() and p.name != CARD]
        for path in files:
            target = self._path(f"{name_key}/v{version}/{path.relative_to(staged).as_posix()}")
            self._call(partial(self.fs.put_file, str(path), target))
        (staged / CARD).write_text(card_for(version), encoding="utf-8")
        if not self.create(f"{name_key}/v{version}/{CARD}", (staged / CARD).read_text("utf-8")):
            raise AdapterError(f"{self.url}/{name_key}/v{version} got a card from another writer")
        return version

    def staging_folder(self, name_key: str) -> Path:
        with self._local_cache():
            self.cache.mkdir(parents=True, exist_ok=True)
            for old in self.cache.glob(".staging-*"):  # left by a killed register
                if time.time() - old.stat().st_mtime > _STALE_STAGING_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)
            return Path(tempfile.mkdtemp(prefix=".staging-", dir=self.cache))

    def version_folder(self, name_key: str, version: int) -> Path | None:
        local = self.cache / name_key / f"v{version}"
        if (name_key, version) in self._checked and (local / CARD).is_file():
            return local  # compared with the bucket once in this process: no request
        remote = self.read(f"{name_key}/v{version}/{CARD}")
        if remote is None:
            return None
        with self._local_cache():
            card = local / CARD
            if card.is_file() and card.read_text(encoding="utf-8", errors="replace") == remote.text:
                self._checked.add((name_key, version))
                return local
            # Not here, half here, or another registry's (the prefix was emptied and refilled):
            # download again.
            self._download(name_key, version, local)
        self._checked.add((name_key, version))
        return local

    def card_text(self, name_key: str, version: int) -> str | None:
        known = self._cards.get((name_key, version))
        if known is not None:
            return known  # a published card never changes
        local = self.cache / name_key / f"v{version}" / CARD
        if (name_key, version) in self._checked and local.is_file():
            return local.read_text(encoding="utf-8")  # downloaded and checked by this process
        remote = self.read(f"{name_key}/v{version}/{CARD}")
        if remote is None:
            return None
        self._cards[(name_key, version)] = remote.text
        return remote.text

    def _download(self, name_key: str, version: int, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=local.parent))
        try:
            remote = self._path(f"{name_key}/v{version}")
            paths = self._call(lambda: self.fs.find(remote, refresh=True))
            for path in paths:
                relative = str(path)[len(remote) + 1 :]
                if relative == ".claim":
                    continue
                (staged / relative).parent.mkdir(parents=True, exist_ok=True)
                self._call(partial(self.fs.get_file, path, str(staged / relative)))
            if local.exists():  # set the old copy aside first: a folder is not renamed over one
                aside = local.with_name(f".{local.name}-old-{uuid.uuid4().hex[:8]}")
                os.replace(local, aside)
                shutil.rmtree(aside, ignore_errors=True)
            try:
                os.replace(staged, local)
            except OSError:
                if not (local / CARD).is_file():  # another process won the rename: use theirs
                    raise
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    @contextmanager
    def _local_cache(self) -> Iterator[None]:
        """Errors of the local cache folder as :class:`AdapterError` naming ``adapters.cache``."""
        try:
            yield
        except AdapterError:
            raise
        except OSError as exc:
            raise AdapterError(
                f"the adapter cache {self.cache} cannot be used ({exc}): set adapters.cache "
                "(--cache) to a folder this process can write"
            ) from exc

    def append_event(self, name_key: str, line: str, seq: int) -> None:
        # Object storage has no append: one object per event, named to sort by pointer write.
        key = f"{name_key}/{_HISTORY_DIR}/{seq:012d}-{uuid.uuid4().hex[:8]}.json"
        self.create(key, line.rstrip("\n") + "\n")

    def events(self, name_key: str) -> list[str]:
        folder = self._path(f"{name_key}/{_HISTORY_DIR}")
        try:
            paths = sorted(self._call(lambda: self.fs.find(folder, refresh=True)))
        except FileNotFoundError:
            return []
        if not paths:
            return []
        contents: dict[str, bytes] = self._call(lambda: self.fs.cat(paths))
        return [contents[p].decode("utf-8", errors="replace").rstrip("\n") for p in paths]

    def _call(self, action: Callable[[], Any]) -> Any:
        """Run one storage call; an unreachable endpoint or refused credentials become an
        :class:`AdapterError` naming the registry and what to check."""
        try:
            return action()
        except FileNotFoundError as exc:
            if _error_code(exc) == "NoSuchBucket":
                raise AdapterError(
                    f"the bucket of the adapter registry {self.url} does not exist: create it, "
                    "or fix adapters.root; nothing was changed"
                ) from exc
            raise
        except FileExistsError:
            raise
        except PermissionError as exc:
            raise RegistryUnavailableError(
                f"the adapter registry {self.url} refused access ({exc}): check the credentials "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or ~/.aws) and the bucket's policy"
            ) from exc
        except OSError as exc:
            if _lost_race(exc):
                raise
            raise RegistryUnavailableError(
                f"the adapter registry {self.url} cannot be reached ({exc}): check "
                "AWS_ENDPOINT_URL, the network and that the bucket exists; nothing was changed"
            ) from exc
        except Exception as exc:  # botocore's connection errors are not OSErrors
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                raise RegistryUnavailableError(
                    f"no credentials for the adapter registry {self.url} ({exc}): set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE / ~/.aws"
                ) from exc
            if type(exc).__module__.startswith(("botocore", "aiobotocore", "aiohttp")):
                raise RegistryUnavailableError(
                    f"the adapter registry {self.url} cannot be reached ({exc}): check "
                    "AWS_ENDPOINT_URL, the network and that the bucket exists; nothing was changed"
                ) from exc
            raise


def _error_code(exc: BaseException) -> str:
    """The S3 error code behind an error s3fs translated (``NoSuchKey``...), or ``""``."""
    response = getattr(exc.__cause__, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _lost_race(exc: BaseException) -> bool:
    """A conditional write refused: 412 PreconditionFailed, or 409 ConditionalRequestConflict
    (S3's answer to two conditional writes of one key at the same moment)."""
    return _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


@contextmanager
def _flock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
