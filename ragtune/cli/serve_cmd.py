"""``ragtune serve``: the OpenAI-compatible server; ``ragtune serve-key``: a new API key."""

from __future__ import annotations

from pathlib import Path

import typer

from ragtune.cli.progress import console

__all__ = ["serve", "serve_key"]


def serve(
    config: Path = typer.Option(
        ..., "--config", "-c", help="Config with a `serve:` section (e.g. configs/serve.yaml)."
    ),
    host: str | None = typer.Option(None, "--host", help="Override serve.host."),
    port: int | None = typer.Option(None, "--port", "-p", help="Override serve.port."),
    index: Path | None = typer.Option(None, "--index", help="Override the config's index."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local (one model in this process) or ray (model replicas on Ray Serve, requests "
        "routed to a replica holding their adapter).",
    ),
    replicas: int = typer.Option(2, "--replicas", min=1, help="With --engine ray: model replicas."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="With --engine ray: the cluster (host:port); else RAY_ADDRESS."
    ),
) -> None:
    """Serve POST /v1/chat/completions, GET /v1/models, /healthz and /metrics.

    Each API key of serve.keys acts for one tenant. Any OpenAI client works: set its base URL to
    http://HOST:PORT/v1, its API key to the tenant's key, and model to tenant/adapter.
    """
    import logging

    import uvicorn

    from ragtune import Assistant
    from ragtune.config import load_config
    from ragtune.errors import ConfigError
    from ragtune.serve import KeyRing, create_app

    cfg = load_config(config)
    keys = KeyRing.from_config(cfg.serve.keys)
    if not keys.tenants_by_hash:
        raise ConfigError(
            str(config),
            [("serve.keys", "no API key: add one per tenant (`ragtune serve-key TENANT`)")],
        )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"{engine!r}: use local or ray", param_hint="--engine")
    if engine == "ray":
        from ragtune.serve.ray_engine import RayServeSettings, serve_on_ray

        console.print(f"starting {replicas} model replicas on Ray Serve (Ctrl-C stops them)")
        serve_on_ray(
            cfg,
            RayServeSettings(replicas=replicas),
            host=host or cfg.serve.host,
            port=cfg.serve.port if port is None else port,
            index=index,
            address=ray_address,
        )
        return
    with console.status("loading the models and the index"):
        assistant = Assistant.from_config(cfg, index=index)
    try:
        app = create_app(assistant, cfg.serve, keys)
        uvicorn.run(
            app,
            host=host or cfg.serve.host,
            port=cfg.serve.port if port is None else port,
            log_level=log_level.lower(),
            timeout_graceful_shutdown=30,
        )
    finally:
        assistant.close()


def serve_key(
    tenant: str = typer.Argument(..., help="The tenant the key acts for."),
) -> None:
    """Make a new random API key for TENANT; print it once, and the config line with its hash."""
    from ragtune.generate.adapters import check_name
    from ragtune.serve import hash_key, new_key

    try:
        tenant = check_name(tenant, "tenant")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="TENANT") from exc
    key = new_key()
    # soft_wrap: the key and the hash must stay on one line to be copied
    console.print(f"key (give it to {tenant}; it is not stored anywhere): {key}", soft_wrap=True)
    console.print("add under serve.keys in the config:")
    console.print(
        f"  - {{tenant: {tenant}, key_sha256: {hash_key(key)}}}", markup=False, soft_wrap=True
    )
