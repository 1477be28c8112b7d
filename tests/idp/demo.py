"""``make demo``: the test IdP with demo users, and a console configured, tested and activated
against it on http://127.0.0.1:8000 — single sign-on working with one command.

Run from the repository root: ``python tests/idp/demo.py`` (Ctrl-C stops both).
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path

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

PUBLIC_URL = "http://127.0.0.1:8000"


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="gatehouse-demo-"))
    provider = OpenIDProvider(
        web_redirect_uris=[PUBLIC_URL + "/auth/oidc/callback"], start_timeout=30.0
    )
    provider.start()
    rt = Runtime(Settings(data_dir=data_dir, public_url=PUBLIC_URL, allow_insecure_http=True))
    try:
        rt.start()
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
                db,
                admin,
                username="alice",
                email="alice@example.com",
                display_name="Alice Anderson",
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
        report = idp_checks.run_checks(rt.idp.current(), public_url=PUBLIC_URL)
        with rt.db.session() as db:
            idp_checks.record_report(db, root_actor, report)
        if not report.ok:
            print("the demo IdP failed its test:", report.as_dict(), file=sys.stderr)
            return 1
        activation.activate(rt.db.session, root_actor)
        print(f"\nGatehouse demo: {PUBLIC_URL}  (single sign-on active, IdP {provider.issuer})")
        print("  Sign in with Demo IdP as alice / alice-password  (Developer via group)")
        print("                      or bob   / bob-password    (Administrator via group)")
        print("  mallory / mallory-password exists only at the IdP: Gatehouse refuses her.")
        print(f"  Break-glass local admin: admin / {admin_password}")
        print("Ctrl-C to stop.\n", flush=True)
        uvicorn.run(create_app(runtime=rt), host="127.0.0.1", port=8000, log_level="warning")
    finally:
        rt.close()
        provider.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
