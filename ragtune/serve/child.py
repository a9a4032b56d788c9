"""``ragtune serve`` in a child process, for scripts, benchmarks and tests that need the real
command: start it on a free loopback port, wait until ``/healthz`` answers, stop it with
SIGINT or SIGTERM (a graceful shutdown) when done."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ServerFailedError", "free_port", "served"]


class ServerFailedError(RuntimeError):
    """The child did not come up, or did not stop cleanly; the message holds its log."""


def free_port() -> int:
    """A loopback port free now, chosen below the system's ephemeral range (20000 up to it):
    ports the system hands out for port 0, as Ray's many processes ask for, cannot take it
    before the server binds it. Falls back to one of the system's choosing."""
    low, high = 20000, _ephemeral_start() - 1
    for _ in range(50 if high > low else 0):
        port = low + secrets.randbelow(high - low + 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_start() -> int:
    """The first port of the system's ephemeral range (Linux's file; 32768 elsewhere)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORT_TAKEN = ("Failed to bind to address", "address already in use", "Errno 98")
"""What the server's log says when the port was taken between :func:`free_port` choosing it
and the server binding it (Ray's own processes bind free ports too, so it happens)."""
_START_TRIES = 3


@contextmanager
def served(
    config: Path,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 300.0,
    extra_args: tuple[str, ...] = (),
    stop_signal: signal.Signals = signal.SIGINT,
) -> Iterator[str]:
    """Run ``ragtune serve --config CONFIG`` on a free port; yield its base URL.

    Output goes to ``log``. A start that fails because another process took the port first
    is retried on a new port (up to 3 tries). Raises :class:`ServerFailedError` if it exits or
    is not healthy in ``start_timeout`` seconds, or if it does not exit with status 0 within
    60 s of ``stop_signal`` (SIGINT, as Ctrl-C; SIGTERM, as a process manager stops it).
    """
    for attempt in range(1, _START_TRIES + 1):
        port = free_port()
        command = [str(Path(sys.executable).parent / "ragtune"), "serve", "--config", str(config)]
        command += ["--port", str(port), *extra_args]
        with log.open("w") as sink:
            process = subprocess.Popen(
                command, env={**os.environ, **(env or {})}, stdout=sink, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log, start_timeout)
        except ServerFailedError:
            _stop(process, stop_signal)
            said = log.read_text()
            if attempt < _START_TRIES and any(mark in said for mark in _PORT_TAKEN):
                continue
            raise
        break
    try:
        yield url
    finally:
        _stop(process, stop_signal)
    if process.returncode != 0:
        raise ServerFailedError(
            f"ragtune serve exited with {process.returncode}:\n{log.read_text()}"
        )


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise ServerFailedError(f"ragtune serve did not start:\n{log.read_text()}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes], stop_signal: signal.Signals) -> None:
    """Signal the child and wait up to 60 s for it; kill it past that."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
