"""``gatehouse db backup FILE`` and ``gatehouse db restore FILE`` (embedded SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    from gatehouse.cli.main import db_app, fail, out, settings_or_exit

    @db_app.command("backup")
    def db_backup(
        file: Annotated[Path, typer.Argument(help="Where to write the backup (must not exist).")],
    ) -> None:
        """Write a consistent copy of the SQLite database (safe while the server runs)."""
        from gatehouse.store.backup import BackupError, backup  # alembic: load only when used

        settings = settings_or_exit()
        try:
            size = backup(settings.resolved_database_url, file)
        except BackupError as exc:
            raise fail(str(exc)) from exc
        out.print(f"Backed up to [bold]{file}[/] ({size:,} bytes, mode 0600).")

    @db_app.command("restore")
    def db_restore(
        file: Annotated[Path, typer.Argument(help="A file written by `gatehouse db backup`.")],
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    ) -> None:
        """Replace the SQLite database with a backup. Stop the server first; restart after."""
        from gatehouse.store.backup import BackupError, restore

        settings = settings_or_exit()
        if not yes and not typer.confirm(
            "Replace the current database with this backup? The current one is kept beside it."
        ):
            raise typer.Exit(1)
        try:
            kept = restore(settings.resolved_database_url, file)
        except BackupError as exc:
            raise fail(str(exc)) from exc
        out.print(
            f"Restored from [bold]{file}[/]. The previous database is kept as {kept}. "
            "Start the server again."
        )
