"""``gatehouse login`` / ``auth status|token|logout`` / ``whoami``: tools sign in through the IdP.

Exit codes (scripts rely on them):

    0  success
    1  error (network, IdP refused, timeout)
    2  usage error (bad option, several servers and none named)
    4  not signed in, or the session has ended: run `gatehouse login SERVER`

Nothing here prints a token, except ``gatehouse auth token``, whose job it is.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # the SDK (httpx, joserfc) is imported by the commands that use it
    from gatehouse.client import GatehouseClientError, StoredSession, TokenCache
    from gatehouse.oidc import DeviceAuthorization

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_SIGNED_IN = 4

EXIT_CODES_HELP = (
    "Exit codes: 0 success · 1 error · 2 usage error · 4 not signed in / session ended."
)

auth_app = typer.Typer(
    help="Manage your sign-ins to Gatehouse servers.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
)
#: soft_wrap: rich never breaks a sentence, a date or a URL across lines (see cli/common.py)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ServerArg = Annotated[
    str | None,
    typer.Argument(
        help="Server URL; default: $GATEHOUSE_SERVER, or the only server you are signed in to.",
        show_default=False,
    ),
]


def _cache() -> TokenCache:
    from gatehouse.client import TokenCache

    return TokenCache(notify=lambda message: err.print(f"[yellow]Note:[/] {message}"))


def _exit_for(exc: GatehouseClientError) -> typer.Exit:
    from gatehouse.client import SessionEnded

    err.print(f"[bold red]Error:[/] {exc.message}", highlight=False)
    reason = getattr(exc, "reason", None)
    if isinstance(exc, SessionEnded) and reason:
        err.print(f"[dim]({reason})[/]", highlight=False)
    return typer.Exit(exc.exit_code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn SDK errors into their message and exit code; Ctrl-C into a plain 'Cancelled'."""
    from gatehouse.client import GatehouseClientError

    try:
        yield
    except GatehouseClientError as exc:
        raise _exit_for(exc) from exc
    except KeyboardInterrupt:
        err.print("Cancelled.")
        raise typer.Exit(EXIT_ERROR) from None


def _resolve_server(cache: TokenCache, server: str | None) -> str:
    """Explicit argument > $GATEHOUSE_SERVER > the only stored session."""
    from gatehouse.client import normalise_server_url

    chosen = server or os.environ.get("GATEHOUSE_SERVER")
    if chosen:
        return normalise_server_url(chosen)
    sessions = cache.sessions()
    if len(sessions) == 1:
        return sessions[0].server
    if not sessions:
        err.print("You are not signed in to any server; run `gatehouse login SERVER_URL`.")
        raise typer.Exit(EXIT_NOT_SIGNED_IN)
    names = ", ".join(s.server for s in sessions)
    err.print(f"You are signed in to several servers ({names}); name one.")
    raise typer.Exit(EXIT_USAGE)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _expiry(ts: float, now: float) -> str:
    """``2026-11-29 20:45:04 UTC (in 9 min)`` or ``expired 3 min ago``."""
    left = int(ts - now)
    minutes = abs(left) // 60
    span = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{max(minutes, 1)} min"
    return f"{_when(ts)} (in {span})" if left > 0 else f"expired {span} ago"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _session_json(session: StoredSession) -> dict[str, Any]:
    return {
        "server": session.server,
        "user": session.username,
        "user_id": session.user_id,
        "method": session.method,
        "issuer": session.issuer,
        "expires_at": _iso(session.access_expires_at),
        "renewable": session.renewable,
    }


# -- gatehouse login ----------------------------------------------------------------------------
# Long on purpose: two thirds of it are the option declarations Typer reads.
def login(
    server_url: Annotated[
        str, typer.Argument(help="The Gatehouse server, e.g. https://gh.example.com")
    ],
    device: Annotated[
        bool,
        typer.Option(
            "--device",
            help="Use the device flow: open a link on any device and enter a code "
            "(chosen by itself when no browser can be opened here).",
        ),
    ] = False,
    no_browser: Annotated[
        bool,
        typer.Option(
            "--no-browser",
            help="Print the sign-in link instead of opening a browser (open it on this machine).",
        ),
    ] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Break-glass: sign a local admin in with a password (prompted, or read from "
            "stdin) — never from an argument.",
        ),
    ] = False,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="With --local: the local admin.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="With --local: read the password from stdin.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait for the browser sign-in.", min=5, max=3600),
    ] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Sign in to a Gatehouse server through your identity provider.

    Opens your browser (or $BROWSER) at the IdP, and waits for the sign-in to come back to a
    one-time address on 127.0.0.1. Over SSH or without a display, the device flow is used:
    open the link shown on any device and enter the code. The session renews itself while you
    work; tokens are kept in your OS keyring (or a file only you can read).
    """
    from gatehouse.client import browser_available, normalise_server_url
    from gatehouse.client.browser import why_no_browser

    cache = _cache()
    with _errors():
        server = normalise_server_url(server_url)
        if local:
            session = _login_local(server, cache, username, password_stdin)
        elif device:
            session = _login_device(server, cache)
        elif no_browser:
            session = _login_browser(server, cache, timeout, open_browser=False)
        elif not browser_available():
            err.print(f"No browser can be opened here ({why_no_browser()}); using the device flow.")
            session = _login_device(server, cache)
        else:
            session = _login_browser(server, cache, timeout, open_browser=True)
    if as_json:
        _print_json(_session_json(session))
        return
    renews = "renews itself" if session.renewable else "sign in again when it expires"
    err.print(
        f"[green]✓[/] Signed in to [bold]{server}[/] as [bold]{session.username}[/] "
        f"(token valid until {_when(session.access_expires_at)}; {renews}).",
        highlight=False,
    )


def _login_browser(
    server: str, cache: TokenCache, timeout: float, *, open_browser: bool
) -> StoredSession:
    from gatehouse.client import login_browser

    status = err.status("Contacting the server…", spinner="dots")

    def on_url(url: str, opened: bool) -> None:
        # the link is always shown: $BROWSER may "succeed" and open nothing at all
        status.stop()
        if opened:
            err.print("Opening your browser… if nothing opens, visit:", highlight=False)
        elif open_browser:
            err.print("Could not open a browser. Open this link in a browser on this machine:")
        else:
            err.print("Open this link in a browser on this machine to sign in:")
        sys.stderr.write(f"\n    {url}\n\n")  # raw: never wrapped, never marked up
        sys.stderr.flush()
        waiting = (
            f"Waiting for you to sign in in the browser (up to {timeout / 60:g} min; "
            "Ctrl-C to cancel)…"
        )
        if err.is_terminal:
            status.update(waiting)
            status.start()
        else:
            err.print(waiting, highlight=False)

    opener = None if open_browser else (lambda _url: False)
    with status:
        return login_browser(
            server, cache=cache, open_browser=opener, on_url=on_url, timeout=timeout
        )


def _login_device(server: str, cache: TokenCache) -> StoredSession:
    from gatehouse.client import login_device

    status = err.status("Contacting the server…", spinner="dots")

    def on_code(device: DeviceAuthorization) -> None:
        status.stop()
        err.print(
            f"To sign in, open [bold]{device.verification_uri}[/] on any device", highlight=False
        )
        err.print(f"and enter the code  [bold reverse] {device.user_code} [/]", highlight=False)
        if device.verification_uri_complete:
            err.print(f"(or open {device.verification_uri_complete})", highlight=False)
        status.update("Waiting for you to approve the sign-in…")
        status.start()

    def on_tick(left: float) -> None:
        status.update(
            f"Waiting for you to approve the sign-in… ({int(left // 60)}:{int(left % 60):02d} left)"
        )

    with status:
        return login_device(server, cache=cache, on_code=on_code, on_tick=on_tick)


def _login_local(
    server: str, cache: TokenCache, username: str | None, password_stdin: bool
) -> StoredSession:
    from gatehouse.client import login_password

    if username is None:
        if not sys.stdin.isatty():
            err.print("Give the local admin with --username when not on a terminal.")
            raise typer.Exit(EXIT_USAGE)
        username = typer.prompt("Local admin username", err=True)
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, err=True)
    if not password:
        err.print("No password was given.")
        raise typer.Exit(EXIT_USAGE)
    return login_password(server, username, password, cache=cache)


# -- gatehouse auth status / token / logout ---------------------------------------------------
@auth_app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Show each server you are signed in to, as whom, and until when (no network needed)."""
    sessions = _cache().sessions()
    if as_json:
        _print_json([_session_json(s) for s in sessions])
        raise typer.Exit(EXIT_OK if sessions else EXIT_NOT_SIGNED_IN)
    if not sessions:
        err.print("You are not signed in to any server; run `gatehouse login SERVER_URL`.")
        raise typer.Exit(EXIT_NOT_SIGNED_IN)
    now = time.time()
    for number, s in enumerate(sessions):
        # one block per server, label and value per line: readable at any terminal width
        if number:
            out.print()
        out.print(f"[bold]{escape(s.server)}[/]", highlight=False)
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column(overflow="fold")
        facts.add_row("  user", escape(s.username or "?"))
        facts.add_row("  signed in with", "identity provider" if s.method == "oidc" else "password")
        facts.add_row("  token expires", _expiry(s.access_expires_at, now))
        facts.add_row("  session", "renews itself" if s.renewable else "ends with the token")
        out.print(facts)


@auth_app.command("token")
def token(server: ServerArg = None, as_json: JsonOpt = False) -> None:
    """Print a fresh access token for scripts (renewed silently when needed).

    Example: curl -H "Authorization: Bearer $(gatehouse auth token)" $URL/api/v1/me
    """
    from gatehouse.client import TokenSource

    cache = _cache()
    with _errors():
        name = _resolve_server(cache, server)
        source = TokenSource(name, cache=cache)
        access = source.access_token()
        session = source.session()
    if as_json:
        _print_json(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_at": _iso(session.access_expires_at),
                "expires_in": max(0, int(session.access_expires_at - time.time())),
                "server": session.server,
                "user": session.username,
            }
        )
        return
    sys.stdout.write(access + "\n")


@auth_app.command("logout")
def logout_command(
    server: ServerArg = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Sign out of every server.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sign out: revoke the sign-in at the identity provider (when it offers revocation), then
    forget the tokens kept on this machine."""
    from gatehouse.client import logout

    cache = _cache()
    with _errors():
        servers = (
            [s.server for s in cache.sessions()]
            if all_servers
            else [_resolve_server(cache, server)]
        )
        results = []
        for name in servers:
            existed, warning = logout(name, cache=cache)
            results.append({"server": name, "signed_out": existed, "warning": warning})
            if warning:
                err.print(f"[yellow]Warning:[/] {warning}", highlight=False)
            if not as_json:
                if existed:
                    err.print(f"Signed out of {name}.", highlight=False)
                else:
                    err.print(f"You were not signed in to {name}.", highlight=False)
    if as_json:
        _print_json(results)
    if not any(r["signed_out"] for r in results):
        raise typer.Exit(EXIT_NOT_SIGNED_IN)


# -- gatehouse whoami ---------------------------------------------------------------------------
def whoami_command(server: ServerArg = None, as_json: JsonOpt = False) -> None:
    """Show who you are on a server (asks the server, renewing the session when needed)."""
    from gatehouse.client import GatehouseClientError, TokenSource
    from gatehouse.client._server import new_http, whoami

    cache = _cache()
    with _errors():
        name = _resolve_server(cache, server)
        source = TokenSource(name, cache=cache)
        with new_http() as http:
            try:
                me = whoami(http, name, source.access_token())
            except GatehouseClientError as exc:
                if exc.code not in ("invalid_token", "unauthenticated"):
                    raise
                me = whoami(http, name, source.access_token(rejected=source.session().access_token))
    if as_json:
        _print_json({"server": name, **me})
        return
    roles = (
        ", ".join(
            r["role"] + (f" ({r['environment']})" if r.get("environment") else "")
            for r in me.get("roles", [])
        )
        or "no roles"
    )
    label = me.get("display_name") or me.get("username")
    out.print(
        f"[bold]{me.get('username')}[/] ({label}) on {name} — {roles}"
        + (" · administrator" if me.get("is_admin") else ""),
        highlight=False,
    )


def _help(func: Any) -> str:
    """A docstring with its paragraphs reflowed (rich help keeps source line breaks)."""
    text = inspect.cleandoc(func.__doc__ or "")
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def register(app: typer.Typer) -> None:
    """Add `login`, `whoami` and the `auth` group to the `gatehouse` command."""
    app.command("login", help=_help(login), epilog=EXIT_CODES_HELP)(login)
    app.command("whoami", help=_help(whoami_command), epilog=EXIT_CODES_HELP)(whoami_command)
    for command in auth_app.registered_commands:
        command.help = _help(command.callback)
        command.epilog = EXIT_CODES_HELP
    app.add_typer(auth_app, name="auth")


__all__ = ["EXIT_ERROR", "EXIT_NOT_SIGNED_IN", "EXIT_OK", "EXIT_USAGE", "register"]
