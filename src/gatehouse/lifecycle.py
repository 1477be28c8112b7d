"""Background services that live as long as the ASGI app: started by its lifespan, stopped
with it (the environment's sync loop, housekeeping)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def run_alongside(app: Any, make: Callable[[Any], Service]) -> None:
    """Build the service from the app when it starts, start it, and stop it when the app stops."""
    running: list[Service] = []

    def start(app: Any) -> None:
        service = make(app)
        running.append(service)
        service.start()

    def stop(_app: Any) -> None:
        while running:
            running.pop().stop()

    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)
