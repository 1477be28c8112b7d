"""``gatehouse admin bootstrap``: local admin accounts (break-glass), from the server host."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from gatehouse.cli.common import fail, out, settings_or_exit
from gatehouse.domain.errors import DomainError

app = typer.Typer(help="Local admin accounts (break-glass).", no_args_is_help=True)


@app.command("bootstrap")
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
