"""``gatehouse db upgrade``, ``gatehouse db backup FILE``, ``gatehouse db restore FILE``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gatehouse.cli.common import fail, out, safe_url, settings_or_exit
from gatehouse.cli.progress import progress

app = typer.Typer(help="Database: migrate, back up, restore.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations (safe while other replicas run)."""
    from gatehouse.store.db import Database
    from gatehouse.store.migrate import current_revision, upgrade

    settings = settings_or_exit()
    database = Database(settings.resolved_database_url)
    try:
        upgrade(database.engine)
        out.print(
            f"Database at {safe_url(settings)} is at revision "
            f"[bold]{current_revision(database.engine)}[/]."
        )
    except Exception as exc:
        raise fail(f"Migration failed: {exc}") from exc
    finally:
        database.dispose()


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts (no progress bar).")]


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")


@app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (must not exist).")],
    as_json: JsonOpt = False,
) -> None:
    """Write a consistent copy of the SQLite database (safe while the server runs)."""
    from gatehouse.store.backup import BackupError, backup  # alembic: load only when used

    settings = settings_or_exit()
    try:
        with progress("Backing up", quiet=as_json, unit="pages") as step:
            size = backup(settings.resolved_database_url, file, progress=step)
    except BackupError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        _print_json({"file": str(file), "bytes": size})
        return
    out.print(f"Backed up to [bold]{file}[/] ({size:,} bytes, mode 0600).")


@app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A file written by `gatehouse db backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Replace the SQLite database with a backup. Stop the server first; restart after."""
    from gatehouse.store.backup import BackupError, restore

    settings = settings_or_exit()
    if not yes and not typer.confirm(
        "Replace the current database with this backup? The current one is kept beside it."
    ):
        raise typer.Exit(1)
    try:
        with progress("Keeping the current database", quiet=as_json, unit="pages") as step:
            kept = restore(settings.resolved_database_url, file, progress=step)
    except BackupError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        _print_json({"restored_from": str(file), "previous": str(kept)})
        return
    out.print(
        f"Restored from [bold]{file}[/]. The previous database is kept as {kept}. "
        "Start the server again."
    )
