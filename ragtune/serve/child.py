"""``ragtune serve`` in a child process, for scripts, benchmarks and tests that need the real
command: start it on a free loopback port, wait until ``/healthz`` answers, stop it with
SIGINT or SIGTERM (a graceful shutdown) when done."""

from __future__ import annotations

import os
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    Output goes to ``log``. Raises :class:`ServerFailedError` if it exits or is not healthy in
    ``start_timeout`` seconds, or if it does not exit with status 0 within 60 s of
    ``stop_signal`` (SIGINT, as Ctrl-C; SIGTERM, as a process manager stops it).
    """
    import httpx

    port = free_port()
    command = [str(Path(sys.executable).parent / "ragtune"), "serve", "--config", str(config)]
    command += ["--port", str(port), *extra_args]
    with log.open("w") as sink:
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=sink, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ServerFailedError(f"ragtune serve did not start:\n{log.read_text()}")
                time.sleep(0.5)
            yield url
        finally:
            if process.poll() is None:
                process.send_signal(stop_signal)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    if process.returncode != 0:
        raise ServerFailedError(
            f"ragtune serve exited with {process.returncode}:\n{log.read_text()}"
        )
