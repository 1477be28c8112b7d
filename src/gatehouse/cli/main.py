"""``gatehouse``: run the console or an environment server, manage the database, sign in.

Each sub-command lives in its own module and is registered here.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from gatehouse import __version__
from gatehouse.domain.errors import DomainError

if TYPE_CHECKING:  # the server stack is imported by the commands that need it: tools start fast
    from gatehouse.settings import Settings

app = typer.Typer(
    name="gatehouse",
    help="Gatehouse — single sign-on for the IT users of your platform, through your IdP.\n\n"
    "Run the console with `gatehouse serve`; sign tools in with `gatehouse login URL`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database: migrate, back up, restore.", no_args_is_help=True)
admin_app = typer.Typer(help="Local admin accounts (break-glass).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")

err = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]Error:[/] {message}")
    return typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    from gatehouse.settings import SettingsError, load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except (SettingsError, ValueError) as exc:
        raise fail(str(exc), 2) from exc


def version_callback(value: bool) -> None:
    if value:
        out.print(f"gatehouse {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Gatehouse command line."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (GATEHOUSE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (GATEHOUSE_PORT).")] = None,
    role: Annotated[
        str | None,
        typer.Option(help="console (default) or environment (GATEHOUSE_ROLE)."),
    ] = None,
    console: Annotated[
        str | None, typer.Option("--console", help="Environment role: the console's URL.")
    ] = None,
    join_token: Annotated[
        str | None, typer.Option(help="Environment role: the one-time join token.")
    ] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Start the console (or an environment server): migrate, create the first admin, serve."""
    import uvicorn

    from gatehouse.runtime import Runtime

    settings = settings_or_exit(
        host=host,
        port=port,
        role=role,
        console_url=console,
        join_token=join_token,
        data_dir=data_dir,
    )
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    rt = Runtime(settings)
    try:
        rt.start()
    except Exception as exc:
        raise fail(f"Could not prepare the database at {_safe_url(settings)}: {exc}") from exc
    if settings.role == "console":
        password = rt.ensure_initial_admin()
        if password is not None:
            path = settings.data_dir / "initial-admin-password"
            out.print(
                "\n[bold]First run:[/] created local admin [bold]admin[/] with password\n\n"
                f"    [bold green]{password}[/]\n\n"
                f"It is also in {path} (mode 0600) until you change it at first sign-in.\n"
            )
    out.print(
        f"Gatehouse {__version__} ({settings.role}) on "
        f"[link]{settings.public_url}[/link] — sign in at {settings.public_url}/login"
    )
    from gatehouse.web.app import create_app

    application = create_app(runtime=rt)
    if workers > 1:
        err.print(
            "Several workers need an import string; use `uvicorn --factory "
            "gatehouse.web.app:create_app --workers N`. Starting one worker."
        )
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        proxy_headers=False,
        server_header=False,
        log_level=settings.log_level.lower(),
    )


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations (safe while other replicas run)."""
    from gatehouse.store.db import Database
    from gatehouse.store.migrate import current_revision, upgrade

    settings = settings_or_exit()
    database = Database(settings.resolved_database_url)
    try:
        upgrade(database.engine)
        out.print(
            f"Database at {_safe_url(settings)} is at revision "
            f"[bold]{current_revision(database.engine)}[/]."
        )
    except Exception as exc:
        raise fail(f"Migration failed: {exc}") from exc
    finally:
        database.dispose()


@admin_app.command("bootstrap")
def admin_bootstrap(
    username: Annotated[str, typer.Option(help="Username of the local admin to create.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create the first local admin headlessly (migrates an empty database first)."""
    from gatehouse.runtime import Runtime

    if not password_stdin:
        raise fail(
            "Pass --password-stdin and pipe the password in; passwords are never "
            "taken from arguments.",
            2,
        )
    password = sys.stdin.readline().rstrip("\r\n")
    settings = settings_or_exit()
    rt = Runtime(settings)
    try:
        rt.migrate()
        if rt.has_local_admin():
            raise fail("A local admin already exists; sign in as that admin to create others.", 3)
        try:
            rt.bootstrap_admin(username, password)
        except DomainError as exc:
            raise fail(exc.detail, 2) from exc
    finally:
        rt.close()
    out.print(f"Created local admin [bold]{username}[/].")


def _register_optional() -> None:
    """Sub-commands contributed by other modules (tools sign-in, keys …)."""
    import importlib

    for module in ("gatehouse.cli.auth", "gatehouse.cli.keys", "gatehouse.cli.backup"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(app)


_register_optional()
