"""``gatehouse``: run the console or an environment server, manage the database, sign in.

Each group of sub-commands lives in its own module, as a Typer app registered here:
``db`` (:mod:`.db`), ``admin`` (:mod:`.admin`), ``keys`` (:mod:`.keys`), and the tools'
``login`` / ``whoami`` / ``auth`` (:mod:`.auth`). Those modules import only typer, rich and the
SDK at load time; the server stack is imported by the commands that need it, so
``gatehouse --version`` and the tools' commands start fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gatehouse import __version__
from gatehouse.cli import admin, auth, db, keys
from gatehouse.cli.common import err, fail, out, safe_url, settings_or_exit

if TYPE_CHECKING:
    from gatehouse.runtime import Runtime

app = typer.Typer(
    name="gatehouse",
    help="Gatehouse — single sign-on for the IT users of your platform, through your IdP.\n\n"
    "Run the console with `gatehouse serve`; sign tools in with `gatehouse login URL`.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: no <bool> beside flags, words wrap whole
    pretty_exceptions_enable=False,
)


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
    from gatehouse.web.app import create_app

    settings = settings_or_exit(
        host=host,
        port=port,
        role=role,
        console_url=console,
        join_token=join_token,
        data_dir=data_dir,
    )
    configure_logging(settings.log_level)
    rt = Runtime(settings)
    try:
        rt.start()
    except Exception as exc:
        raise fail(f"Could not prepare the database at {safe_url(settings)}: {exc}") from exc
    _first_run(rt)
    out.print(
        f"Gatehouse {__version__} ({settings.role}) on "
        f"[link]{settings.public_url}[/link] — sign in at {settings.public_url}/login"
    )
    if workers > 1:
        err.print(
            "Several workers need an import string; use `uvicorn --factory "
            "gatehouse.web.app:create_app --workers N`. Starting one worker."
        )
    uvicorn.run(
        create_app(runtime=rt),
        host=settings.host,
        port=settings.port,
        proxy_headers=False,
        server_header=False,
        log_level=settings.log_level.lower(),
    )


def configure_logging(level: str) -> None:
    """The server's log: ``level`` for Gatehouse; httpx's one INFO line per request (an
    environment's sync poll every few seconds, each IdP call) only when ``level`` is DEBUG."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet = logging.DEBUG if logging.getLevelName(level) == logging.DEBUG else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)


def _first_run(rt: Runtime) -> None:
    """Console role, empty directory: create local admin ``admin`` and print its password once."""
    from gatehouse.runtime import INITIAL_PASSWORD_FILE

    if rt.settings.role != "console":
        return
    password = rt.ensure_initial_admin()
    if password is not None:
        path = rt.settings.data_dir / INITIAL_PASSWORD_FILE
        out.print(
            "\n[bold]First run:[/] created local admin [bold]admin[/] with password\n\n"
            f"    [bold green]{password}[/]\n\n"
            f"It is also in {path} (mode 0600) until you change it at first sign-in.\n"
        )


# The sub-commands, in the order `gatehouse --help` lists them (after `serve`).
auth.register(app)  # `login` and `whoami` (top-level commands) and the `auth` group
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(keys.app, name="keys")
