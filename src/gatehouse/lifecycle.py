"""Background services that live as long as the ASGI app: built and started by its lifespan,
stopped with it (housekeeping; on an environment server, the sync loop).

:func:`background_services` is the whole list, so a reader sees in one place what runs beside
the web app for each role.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from gatehouse.domain.housekeeping import Housekeeper
from gatehouse.runtime import Runtime
from gatehouse.sync.puller import EnvironmentSync


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def background_services(rt: Runtime) -> list[Service]:
    """What runs beside the web app for this role, in start order."""
    services: list[Service] = [
        Housekeeper(rt.db, lockout_minutes=rt.settings.lockout_minutes),
    ]
    if rt.settings.role == "environment":
        services.append(EnvironmentSync(rt))
    return services


@contextmanager
def running(services: Sequence[Service]) -> Iterator[None]:
    """Start ``services`` in order; stop the started ones in reverse order on the way out."""
    started: list[Service] = []
    try:
        for service in services:
            service.start()
            started.append(service)
        yield
    finally:
        while started:
            started.pop().stop()
