"""``ragtune serve``: an OpenAI-compatible HTTP server over one Assistant, for many tenants.

::

    from ragtune import Assistant, load_config
    from ragtune.serve import KeyRing, create_app

    config = load_config("configs/serve.yaml")
    assistant = Assistant.from_config(config)
    app = create_app(assistant, config.serve, KeyRing.from_config(config.serve.keys))

See :mod:`ragtune.serve.app` for the routes and :mod:`ragtune.serve.scheduler` for batching.
FastAPI loads with :func:`create_app`, not with this package (the config imports its settings).
"""

from typing import Any

from ragtune.serve.keys import ApiKey, KeyRing, hash_key, new_key
from ragtune.serve.settings import ServeSettings

__all__ = [
    "ApiKey",
    "KeyRing",
    "QueueFullError",
    "Scheduler",
    "ServeSettings",
    "create_app",
    "hash_key",
    "new_key",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ragtune.serve.app import create_app

        return create_app
    if name in ("QueueFullError", "Scheduler"):
        from ragtune.serve import scheduler

        return getattr(scheduler, name)
    raise AttributeError(f"module 'ragtune.serve' has no attribute {name!r}")
