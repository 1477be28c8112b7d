"""``make demo``: the test IdP with demo users, and a console configured, tested and activated
against it — single sign-on working with one command.

Run from the repository root: ``python tests/idp/demo.py [--port 8010]`` (default
``$GATEHOUSE_PORT``, else 8000; ``make demo PORT=8010``). Ctrl-C stops both.

The console's port is taken (bound) before anything else happens, so a busy port is one clear
sentence and nothing is started or printed; the data directory is a temporary one, removed on
exit (Ctrl-C and SIGTERM included), and so is the IdP's.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import sys
import tempfile
from pathlib import Path
from types import FrameType

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gatehouse.domain import activation, idp_checks, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.idp import save_config
from gatehouse.runtime import Runtime
from gatehouse.settings import Settings
from gatehouse.web.app import create_app
from idp.fixture import OpenIDProvider
from idp_helpers import idp_config

HOST = "127.0.0.1"


def _port(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description="Gatehouse with single sign-on, for a demo.")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GATEHOUSE_PORT") or 8000),
        help="the console's port (default: $GATEHOUSE_PORT, else 8000)",
    )
    port: int = parser.parse_args(argv).port
    return port


def _listen(port: int) -> socket.socket | None:
    """The console's listening socket, bound now (None: the port is taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    sock.listen(128)
    return sock


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _seed(rt: Runtime, provider: OpenIDProvider, public_url: str) -> str | None:
    """Users, the demo IdP configured, tested and activated; the admin's password (None: the
    IdP failed its test)."""
    admin_password = secrets.token_urlsafe(12)
    admin = Actor.system("demo")
    with rt.db.session() as db:
        root = users.create_user(
            db,
            admin,
            username="admin",
            password=admin_password,
            local_admin=True,
            display_name="Local administrator",
        )
        users.create_user(
            db, admin, username="alice", email="alice@example.com", display_name="Alice Anderson"
        )
        users.create_user(
            db, admin, username="bob", email="bob@example.com", display_name="Bob Brown"
        )
        root_actor = Actor(root.id, root.username, None, local_admin=True, is_admin=True)
        config = idp_config(
            provider,
            display_name="Demo IdP",
            groups_claim="groups",
            group_role_rules=[
                {"group": "developers", "role": "Developer"},
                {"group": "operators", "role": "Administrator"},
            ],
        )
        secret = config.pop("client_secret")
        save_config(
            db,
            root_actor,
            config,
            box=rt.box,
            allow_insecure_http=True,
            if_match=None,
            client_secret=secret,
        )
    report = idp_checks.run_checks(rt.idp.current(), public_url=public_url)
    with rt.db.session() as db:
        idp_checks.record_report(db, root_actor, report)
    if not report.ok:
        print("the demo IdP failed its test:", report.as_dict(), file=sys.stderr)
        return None
    activation.activate(rt.db.session, root_actor)
    return admin_password


def main(argv: list[str] | None = None) -> int:
    port = _port(argv)
    sock = _listen(port)
    if sock is None:
        print(
            f"Port {port} is in use on {HOST}; stop what uses it or choose another port: "
            f"make demo PORT={port + 10}  (or GATEHOUSE_PORT={port + 10}).",
            file=sys.stderr,
        )
        return 1
    public_url = f"http://{HOST}:{port}"
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    provider = OpenIDProvider(
        web_redirect_uris=[public_url + "/auth/oidc/callback"], start_timeout=30.0
    )
    with sock, tempfile.TemporaryDirectory(prefix="gatehouse-demo-") as data_dir:
        rt = Runtime(
            Settings(data_dir=Path(data_dir), public_url=public_url, allow_insecure_http=True)
        )
        try:
            provider.start()
            rt.start()
            admin_password = _seed(rt, provider, public_url)
            if admin_password is None:
                return 1
            print(f"\nGatehouse demo: {public_url}  (single sign-on active, IdP {provider.issuer})")
            print("  Sign in with Demo IdP as alice / alice-password  (Developer via group)")
            print("                      or bob   / bob-password    (Administrator via group)")
            print("  mallory / mallory-password exists only at the IdP: Gatehouse refuses her.")
            print(f"  Break-glass local admin: admin / {admin_password}")
            print("Ctrl-C to stop.\n", flush=True)
            config = uvicorn.Config(create_app(runtime=rt), log_level="warning")
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        finally:
            rt.close()
            provider.stop()
    print("Demo stopped; its temporary data is removed.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
