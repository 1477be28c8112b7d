"""What every server-side command shares: its consoles, the error exit, and the settings.

Light on purpose (typer and rich only): every command module imports it, and ``gatehouse
--version`` loads every command module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # the server stack is imported by the commands that need it: tools start fast
    from gatehouse.settings import Settings

#: soft_wrap: rich never breaks a line itself (a sentence, a date or a URL stays whole; the
#: terminal wraps long lines, and copying one gives it back intact)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error; the caller raises the returned exit (``raise fail(...)``).

    Escaped: messages are plain text ("gatehouse-sso[redis]" is not a rich markup tag)."""
    err.print(f"[bold red]Error:[/] {escape(message)}")
    return typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    """The settings (environment + the options given), or exit 2 with the reason."""
    from gatehouse.settings import SettingsError, load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except (SettingsError, ValueError) as exc:
        raise fail(str(exc), 2) from exc


def safe_url(settings: Settings) -> str:
    """The database URL without its password (for messages)."""
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)
