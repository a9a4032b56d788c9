"""API keys: each key acts for one tenant; only SHA-256 hashes are kept in memory.

Keys are random 32-byte tokens (``rt-`` + URL-safe base64), so a plain SHA-256 is the right
hash: there is nothing to brute-force, and looking a hash up in a dict leaks nothing about
other keys.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from annotated_types import MaxLen, MinLen

from ragtune.errors import ConfigError
from ragtune.settings import check_bounds

__all__ = ["ApiKey", "KeyRing", "hash_key", "new_key"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ApiKey:
    """One API key of ``ragtune serve``: the tenant it acts for, and the key, never in clear.

    ``key_sha256`` is the SHA-256 of the key (``ragtune serve-key TENANT`` makes a key and
    prints its line); ``key_env`` names an environment variable holding the key, hashed when
    the server starts. A key sees its tenant's documents and adapters, nothing else.
    """

    tenant: Annotated[str, MinLen(1), MaxLen(64)]
    key_sha256: str | None = None
    key_env: str | None = None

    def __post_init__(self) -> None:
        check_bounds(self)
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_sha256 and key_env")
        if self.key_sha256 is not None and not _SHA256.match(self.key_sha256):
            raise ValueError("key_sha256 must be 64 lower-case hex digits (ragtune serve-key)")
        if self.key_env is not None and not _ENV.match(self.key_env):
            raise ValueError(f"key_env {self.key_env!r} is not an environment variable name")


PREFIX = "rt-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key."""
    return PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyRing:
    """Key hash -> tenant."""

    tenants_by_hash: Mapping[str, str]

    @classmethod
    def from_config(
        cls, keys: Sequence[ApiKey], environ: Mapping[str, str] | None = None
    ) -> KeyRing:
        """Hash the keys named by ``key_env`` now; refuse a missing variable or a reused key."""
        environ = os.environ if environ is None else environ
        found: dict[str, str] = {}
        for entry in keys:
            if entry.key_env is not None:
                raw = environ.get(entry.key_env, "")
                if not raw.strip():
                    raise ConfigError(
                        "serve.keys",
                        [
                            (
                                entry.key_env,
                                f"the environment variable (key of tenant {entry.tenant}) is "
                                "not set or empty: export it, or give key_sha256",
                            )
                        ],
                    )
                digest = hash_key(raw.strip())
            else:
                assert entry.key_sha256 is not None
                digest = entry.key_sha256
            if found.get(digest, entry.tenant) != entry.tenant:
                raise ConfigError(
                    "serve.keys",
                    [
                        (
                            entry.tenant,
                            f"this key is also {found[digest]}'s: give each tenant its own key",
                        )
                    ],
                )
            found[digest] = entry.tenant
        return cls(found)

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant of an ``Authorization: Bearer KEY`` header, or None."""
        if not authorization:
            return None
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return self.tenants_by_hash.get(hash_key(key.strip()))

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(self.tenants_by_hash.values())
