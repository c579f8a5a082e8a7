"""``ioc demo`` and what only it needs, apart from the core: :mod:`.run` (the supervisor that
starts the whole system as subprocesses), :mod:`.embedded` (the embedded PostgreSQL and MQTT
broker it uses when ``IOC_DATABASE_URL`` / ``IOC_MQTT_URL`` are unset; the test suite uses them
too) and :mod:`.catcher` (the local mail catcher). Their third-party dependencies are the
``[demo]`` extra. Nothing in the core imports this package (tests/unit/test_architecture.py);
only the command line (``ioc/cli.py``) runs it.
"""

from __future__ import annotations

from .run import Child, Output, Supervisor, main

__all__ = ["Child", "Output", "Supervisor", "main"]
