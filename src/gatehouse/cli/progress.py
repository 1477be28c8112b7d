"""Progress of long work (backup, restore, key rotation, bulk changes) on a terminal.

``with progress("Backing up", quiet=as_json) as step: work(progress=step)``: ``step(done,
total)`` moves a bar on stderr while the block runs, and the bar disappears when it ends. Off a
terminal, or with ``--json``, ``step`` does nothing: scripts and logs get no control characters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from gatehouse.cli.common import err

Step = Callable[[int, int], None]


def _ignore(_done: int, _total: int) -> None:
    return None


@contextmanager
def progress(description: str, *, quiet: bool = False, unit: str = "") -> Iterator[Step]:
    """A bar for ``description`` while the block runs (terminal only, never with ``quiet``)."""
    if quiet or not err.is_terminal:
        yield _ignore
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield step
