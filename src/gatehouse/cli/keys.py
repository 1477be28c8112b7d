"""``gatehouse keys rotate [--finish]`` and ``gatehouse keys status``: the secret key at rest.

The logic is in :mod:`gatehouse.domain.keyrotation`; this module reads options and prints.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from gatehouse.cli.common import fail, out, settings_or_exit
from gatehouse.cli.progress import progress

if TYPE_CHECKING:
    from gatehouse.domain.keyrotation import Report
    from gatehouse.settings import Settings


def _table(report: Report) -> Table:
    table = Table("encrypted values", "active key", "old key", "unreadable", "re-encrypted")
    for name, c in report.columns.items():
        table.add_row(name, str(c.current), str(c.old), str(c.unreadable), str(c.rewritten))
    return table


def _json(report: Report, *, started: bool, kid: str | None) -> dict[str, Any]:
    return {
        "started": started,
        "new_signing_key": kid,
        "columns": {
            name: {
                "active_key": c.current,
                "old_key": c.old,
                "unreadable": c.unreadable,
                "reencrypted": c.rewritten,
            }
            for name, c in report.columns.items()
        },
    }


app = typer.Typer(help="The secret key that encrypts secrets at rest.")


@app.command("rotate")
def rotate(
    new_key_stdin: Annotated[
        bool,
        typer.Option("--new-key-stdin", help="Read the new key from stdin (else generated)."),
    ] = False,
    finish: Annotated[
        bool,
        typer.Option("--finish", help="Drop the old key once nothing is encrypted under it."),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows re-encrypted per transaction.")
    ] = 200,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (no progress bar).")
    ] = False,
) -> None:
    """Re-encrypt every secret under a new key while the server runs (run again to resume).

    Then `--finish` drops the old key. Servers keep decrypting with the old key until then.
    """
    from gatehouse.domain import keyrotation  # the server stack loads only when used
    from gatehouse.runtime import open_runtime

    settings = settings_or_exit()
    if finish:
        _finish(settings)
        return
    new_key = sys.stdin.readline().strip() if new_key_stdin else None
    try:
        started = keyrotation.begin(settings, new_key)
    except keyrotation.RotationError as exc:
        raise fail(str(exc), 2) from exc
    with (
        open_runtime(settings) as rt,  # built after begin: the new key is active
        progress("Re-encrypting", quiet=as_json, unit="values") as step,
    ):
        rt.tokens.load_keys(create=False)
        report, kid = keyrotation.reencrypt(
            rt.db, rt.box, rt.tokens, batch_size=batch_size, progress=step
        )
    if as_json:
        sys.stdout.write(json.dumps(_json(report, started=started, kid=kid)) + "\n")
        return
    out.print("New key active; the old one only decrypts." if started else "Resumed.")
    out.print(_table(report))
    if kid:
        out.print(f"New signing key [bold]{kid}[/] (the previous one still verifies).")
    if report.unreadable:
        out.print(f"[yellow]{report.unreadable} value(s) are unreadable under every key.[/]")
    out.print("Next: `gatehouse keys rotate --finish` drops the old key.")


def _finish(settings: Settings) -> None:
    """``rotate --finish``: drop the old key once nothing needs it, and say what is left."""
    from gatehouse.domain import keyrotation
    from gatehouse.runtime import open_runtime

    with open_runtime(settings) as rt:
        rt.tokens.load_keys(create=False)
        try:
            done = keyrotation.finish(settings, rt.db, rt.box, rt.tokens)
        except keyrotation.RotationError as exc:
            raise fail(str(exc)) from exc
    if settings.secret_key and settings.old_secret_keys.strip():
        out.print("Nothing needs the old key: remove GATEHOUSE_OLD_SECRET_KEYS everywhere.")
    elif done.dropped_from_file:
        out.print(f"Dropped {done.dropped_from_file} old key(s) from {settings.key_file}.")
    else:
        out.print("No old key was left; nothing to drop.")
    if done.report.unreadable:
        out.print(
            f"[yellow]{done.report.unreadable} value(s) are unreadable under every key "
            "(see `gatehouse keys status`); re-enter those secrets.[/]"
        )
    if done.signing_keys_retire_after is not None:
        out.print(
            "The previous signing key keeps verifying tokens until "
            f"{done.signing_keys_retire_after:%H:%M:%S} UTC; run `--finish` again after "
            "that to retire it."
        )


@app.command("status")
def status() -> None:
    """How many secrets are encrypted under the active key, an old key, or none we have."""
    from gatehouse.domain import keyrotation
    from gatehouse.runtime import open_runtime

    settings = settings_or_exit()
    with open_runtime(settings) as rt:
        report = keyrotation.scan(rt.db, rt.box)
    out.print(_table(report))
    state = "in progress" if keyrotation.in_progress(settings) else "not in progress"
    out.print(f"Rotation {state}.")
