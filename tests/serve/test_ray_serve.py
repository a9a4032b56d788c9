"""``serve --engine ray``: the same app over two model replicas on a real local Ray Serve,
tiny real parts, real HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragtune.serve.child import free_port
from tests.serve.test_server import ACME_KEY, GLOBEX_KEY, QUESTION, setup  # noqa: F401 - fixture

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(600)


def _dying_replica(marker: Path) -> type:
    """A real model replica that kills its own process on the first question about
    'dying' (the marker file remembers it happened), as a crash mid-request would."""
    from ragtune.serve.ray_engine import ModelReplica

    class DyingReplica(ModelReplica):
        async def answer(self, question: Any) -> Any:
            if "dying" in question.text and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)
            return await super().answer(question)

    return DyingReplica


def test_serving_on_an_unreachable_cluster_is_a_clear_error(setup, tmp_path):  # noqa: F811
    import subprocess
    import sys

    import yaml

    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(setup["raw"]))
    address = f"127.0.0.1:{free_port()}"
    # The console entry point, as a user runs it: it turns ragtune's errors into exit status 2.
    command = [sys.executable, "-m", "ragtune", "serve", "-c", str(config)]
    result = subprocess.run(
        [*command, "--engine", "ray", "--ray-address", address],
        env={**os.environ, "GLOBEX_KEY": GLOBEX_KEY, "RAY_ADDRESS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"error: no Ray cluster answers at {address}" in message
    assert "ray start --head" in message and "Traceback" not in message


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_the_command_stops_cleanly(setup, tmp_path, stop):  # noqa: F811
    """``ragtune serve --engine ray`` as a user runs it (its own local Ray, two replicas): it
    answers, and SIGTERM (as a process manager stops it) or SIGINT (Ctrl-C; here inherited as
    ignored, as a shell's ``ragtune serve ... &`` leaves it) stops the replicas, Ray and the
    command with status 0, in well under a minute. Runs before the module's in-process Ray, so
    the command starts a Ray of its own."""
    import signal
    import time

    import yaml

    from ragtune.serve.child import served

    assert not ray.is_initialized()
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(setup["raw"]))
    extra = ("--engine", "ray", "--replicas", "2", "--log-level", "warning")
    env = {"GLOBEX_KEY": GLOBEX_KEY, "RAY_ADDRESS": ""}
    log = tmp_path / "serve.log"
    signum = signal.Signals[stop]
    # The child inherits an ignored SIGINT, as from a non-interactive shell's background job.
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with served(config, log, env=env, extra_args=extra, stop_signal=signum) as url:
            signal.signal(signal.SIGINT, inherited)
            reply = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "acme", "messages": QUESTION},
                headers={"Authorization": f"Bearer {ACME_KEY}"},
                timeout=120,
            )
            assert reply.status_code == 200, reply.text
            stopping = time.monotonic()
    finally:
        signal.signal(signal.SIGINT, inherited)
    # served() raises when the command is not gone 60 s after the signal, or exits non-zero.
    assert time.monotonic() - stopping < 45
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def ray_server(setup: dict[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: F811
    from ray import serve

    from ragtune.serve.ray_engine import RayServeSettings, deploy

    os.environ["GLOBEX_KEY"] = GLOBEX_KEY  # the ingress reads the key from its environment
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "GLOBEX_KEY": GLOBEX_KEY}},
    )
    port = free_port()
    marker = setup["root"] / "replica-died"
    try:
        deploy(
            setup["config"],
            RayServeSettings(replicas=2),
            host="127.0.0.1",
            port=port,
            replica=_dying_replica(marker),
        )
        yield {"url": f"http://127.0.0.1:{port}", "marker": marker}
    finally:
        serve.shutdown()
        ray.shutdown()


def _chat(server: dict[str, Any], model: str, key: str = ACME_KEY, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server['url']}/v1/chat/completions",
        json={"model": model, "messages": QUESTION, **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )


def _health(server: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.get(f"{server['url']}/healthz", timeout=30)
    assert reply.status_code == 200
    return dict(reply.json())


def test_answers_keys_and_tenants_as_the_local_server(ray_server):
    reply = _chat(ray_server, "acme")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"]
    assert _chat(ray_server, "acme/support").status_code == 200
    # Another tenant's adapter reads as one that does not exist; a bad key is 401.
    assert _chat(ray_server, "globex/helper").status_code == 404
    assert _chat(ray_server, "globex/helper", key=GLOBEX_KEY).status_code == 200
    assert _chat(ray_server, "acme", key="rt-wrong").status_code == 401
    models = httpx.get(
        f"{ray_server['url']}/v1/models", headers={"Authorization": f"Bearer {ACME_KEY}"}
    ).json()
    assert {m["id"] for m in models["data"]} == {"acme", "acme/support"}
    health = _health(ray_server)
    assert health["engine"] == "ray" and health["replicas_seen"] >= 1


def test_requests_go_to_a_replica_that_holds_their_adapter(ray_server):
    before = _health(ray_server)
    for _ in range(8):
        assert _chat(ray_server, "globex/helper", key=GLOBEX_KEY).status_code == 200
    after = _health(ray_server)
    held = after["routed_to_holding_replica"] - before["routed_to_holding_replica"]
    loaded = after["routed_and_loaded"] - before["routed_and_loaded"]
    assert held + loaded == 8
    # The adapter was loaded by an earlier test or by the first of these; the rest find it.
    assert loaded <= 1, after
    metrics = httpx.get(f"{ray_server['url']}/metrics").text
    assert 'ragtune_adapter_routes_total{held="true"}' in metrics


def test_a_replica_dying_mid_request_is_retried_once_and_answered_once(ray_server):
    reply = httpx.post(
        f"{ray_server['url']}/v1/chat/completions",
        json={"model": "acme", "messages": [{"role": "user", "content": "Is the dying fine?"}]},
        headers={"Authorization": f"Bearer {ACME_KEY}"},
        timeout=300,
    )
    assert ray_server["marker"].exists(), "the replica did not die"
    assert reply.status_code == 200, reply.text
    assert reply.json()["object"] == "chat.completion"
    assert _health(ray_server)["replica_retries"] == 1
    # The server goes on answering after the replica is replaced.
    assert _chat(ray_server, "acme").status_code == 200


def test_more_replicas_than_the_cluster_holds_is_refused(ray_server, setup):  # noqa: F811
    from ragtune.errors import ClusterError
    from ragtune.serve.ray_engine import RayServeSettings, deploy

    with pytest.raises(ClusterError, match="ask for fewer replicas"):
        deploy(setup["config"], RayServeSettings(replicas=5), host="127.0.0.1", port=free_port())
    with pytest.raises(ClusterError, match="at least 1"):
        RayServeSettings(replicas=0)
    assert _chat(ray_server, "acme").status_code == 200  # the running app is untouched
