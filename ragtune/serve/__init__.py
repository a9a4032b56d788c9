"""``ragtune serve``: an OpenAI-compatible HTTP server over one Assistant, for many tenants.

::

    from ragtune import Assistant
    from ragtune.serve import create_app, KeyRing

    assistant = Assistant.from_config("configs/serve.yaml")
    app = create_app(assistant, config.serve, KeyRing.from_config(config.serve.keys))

See :mod:`ragtune.serve.app` for the routes and :mod:`ragtune.serve.scheduler` for batching.
"""

from ragtune.serve.app import create_app
from ragtune.serve.keys import KeyRing, hash_key, new_key
from ragtune.serve.scheduler import QueueFullError, Scheduler

__all__ = ["KeyRing", "QueueFullError", "Scheduler", "create_app", "hash_key", "new_key"]
