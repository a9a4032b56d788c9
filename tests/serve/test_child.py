"""``ragtune serve`` as a child process (what scripts, benchmarks and the Ray tests start): a
port taken between choosing it and binding it must cost a retry, not a failed run."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ragtune.serve import child
from tests.serve.test_server import ACME_KEY, GLOBEX_KEY, QUESTION, setup  # noqa: F401 - fixture


def test_free_port_is_below_the_ephemeral_range_and_free() -> None:
    port = child.free_port()
    assert 20000 <= port < child._ephemeral_start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free indeed


def test_a_port_taken_before_the_server_binds_it_is_retried(
    setup: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(setup["raw"]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy, child.free_port()])
        monkeypatch.setattr(child, "free_port", lambda: next(ports))
        with child.served(config, tmp_path / "serve.log", env={"GLOBEX_KEY": GLOBEX_KEY}) as url:
            assert not url.endswith(f":{busy}")
            reply = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "acme", "messages": QUESTION},
                headers={"Authorization": f"Bearer {ACME_KEY}"},
                timeout=60,
            )
            assert reply.status_code == 200, reply.text
