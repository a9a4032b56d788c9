"""The Ray cluster ragtune's distributed engines run on (index builds, serving).

One rule for both: the Ray already initialised in this process (a notebook, a test), else
the cluster at ``address`` or ``RAY_ADDRESS`` (checked to answer at once), else a local Ray
started for the command and stopped after it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ragtune.errors import ClusterError

__all__ = ["ray_session"]

_INSTALL = "pip install 'ragtune[ray]'"


@contextmanager
def ray_session(address: str | None, *, env_vars: Sequence[str] = ()) -> Iterator[None]:
    """Ray for the duration of the block: the one already initialised in this process, else
    ``address`` or ``RAY_ADDRESS`` (checked to answer first), else a local Ray stopped after.
    The environment variables named in ``env_vars`` (set here) go to every Ray worker, with
    ``HF_HUB_OFFLINE``.

    Raises :class:`ClusterError` when Ray is not installed or the cluster does not answer.
    """
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"Ray is not installed: {_INSTALL}") from exc
    if ray.is_initialized():
        yield
        return
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target is not None and target != "auto":
        _check_reachable(target)
    try:
        ray.init(
            address=target,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={
                "env_vars": {
                    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
                    **{name: os.environ[name] for name in env_vars if name in os.environ},
                }
            },
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"cannot start or join Ray at {target or 'a new local cluster'}: {exc}; check "
            "RAY_ADDRESS (unset it to start a local Ray)"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, with the fix, when nothing listens at ``address`` (Ray itself would retry
    for a minute before giving up)."""
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"the Ray address {address!r} is not host:port (or ray://host:port); fix "
            "RAY_ADDRESS or --ray-address"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({exc}): start one there (`ray start "
            "--head`), fix the address, or unset RAY_ADDRESS to start a local Ray"
        ) from exc
