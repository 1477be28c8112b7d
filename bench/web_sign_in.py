"""(d) A complete web sign-in against oidc-provider: Gatehouse's own share of the time.

    python bench/web_sign_in.py [--rounds 40] [--postgres] [--redis-url redis://127.0.0.1:6379/15]

A scripted HTTP browser (a fresh cookie jar per sign-in, as a first visit) times each hop:
``GET /auth/oidc/start`` (Gatehouse), the IdP's authorization and login pages (the IdP), and
``GET /auth/oidc/callback`` (Gatehouse, which itself calls the IdP's token endpoint). The time
Gatehouse waits on the IdP inside the callback is read from its own
``gatehouse_idp_request_seconds`` histogram (``/metrics``) before and after each callback.

    Gatehouse's share = start + callback - IdP wait inside the callback

Printed: p50 of each part, the share against the whole sign-in, and against the baseline
``GET /healthz`` round trip of the same server in the same run. Target: share <= 15 ms p50.
The landing page after the redirect is shown separately (it is the console, not the sign-in).
Both Gatehouse hops count a rate-limit hit: in the database by default, in Redis with
``--redis-url`` (as with ``GATEHOUSE_REDIS_URL`` in production). SQLite by default;
``--postgres`` runs on a throwaway PostgreSQL database (the production set-up).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _common import admin_token, free_port, gatehouse_server, p50_ms, throwaway_postgres

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from idp.fixture import WEB_CLIENT_ID, WEB_CLIENT_SECRET, OpenIDProvider

TARGET_MS = 15.0


def idp_wait_seconds(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    match = re.search(r"^gatehouse_idp_request_seconds_sum ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, "gatehouse_idp_request_seconds is missing from /metrics"
    return float(match.group(1))


def configure(url: str, idp: OpenIDProvider) -> None:
    """As an administrator would: PUT the IdP settings, test them, activate, create alice."""
    headers = {"Authorization": f"Bearer {admin_token(url)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        etag = api.get("/api/v1/idp").headers["ETag"]
        body = {
            "display_name": "Bench IdP",
            "issuer": idp.issuer,
            "client_id": WEB_CLIENT_ID,
            "client_secret": WEB_CLIENT_SECRET,
            "native_client_id": "gatehouse-cli",
            "scopes": ["openid", "profile", "email"],
        }
        api.put("/api/v1/idp", json=body, headers={"If-Match": etag}).raise_for_status()
        assert api.post("/api/v1/idp/test").json()["ok"]
        api.post("/api/v1/idp/activate").raise_for_status()
        api.post("/api/v1/users", json={"username": "alice"}).raise_for_status()


def sign_in(url: str, idp: OpenIDProvider, metrics: httpx.Client) -> dict[str, float]:
    """One complete sign-in; seconds per part."""
    with httpx.Client(base_url=url, timeout=30) as browser:
        # The user is on the sign-in page first and clicks "Sign in with …": the connection
        # exists already, as in a real browser (a fresh client's first request costs the client
        # several ms of set-up that are not Gatehouse's).
        assert browser.get("/login").status_code == 200
        t0 = time.perf_counter()
        start = browser.get("/auth/oidc/start", follow_redirects=False)
        t1 = time.perf_counter()
        assert start.status_code == 302, start.text
        location = idp.login(
            start.headers["location"], "alice", "alice-password", client=idp.new_browser()
        )
        waited_before = idp_wait_seconds(metrics)
        parts = urlsplit(location)
        t2 = time.perf_counter()
        done = browser.get(f"{parts.path}?{parts.query}", follow_redirects=False)
        t3 = time.perf_counter()
        assert done.status_code == 303, done.text
        waited = idp_wait_seconds(metrics) - waited_before
        t4 = time.perf_counter()
        landing = browser.get(done.headers["location"], follow_redirects=True)
        t5 = time.perf_counter()
        assert landing.status_code == 200, landing.status_code
    return {
        "start": t1 - t0,
        "idp pages": t2 - t1,
        "callback": t3 - t2,
        "idp wait in callback": waited,
        "gatehouse share": (t1 - t0) + (t3 - t2) - waited,
        "sign-in total": (t1 - t0) + (t2 - t1) + (t3 - t2),
        "landing page (not counted)": t5 - t4,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--redis-url", help="count rate limits in this Redis")
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL")
    args = parser.parse_args()
    began = time.perf_counter()
    port = free_port()
    env = {"GATEHOUSE_ALLOW_INSECURE_HTTP": "true"}
    if args.redis_url:
        env["GATEHOUSE_REDIS_URL"] = args.redis_url
    with (
        throwaway_postgres() if args.postgres else nullcontext(None) as database_url,
        OpenIDProvider(
            web_redirect_uris=[f"http://127.0.0.1:{port}/auth/oidc/callback"], log_requests=False
        ) as idp,
        gatehouse_server(port=port, extra_env=env, database_url=database_url) as url,
        httpx.Client(base_url=url, timeout=30) as metrics,
    ):
        configure(url, idp)
        for _ in range(3):  # warm-up: discovery and JWKS caches, connection pools
            sign_in(url, idp, metrics)
        rounds = [sign_in(url, idp, metrics) for _ in range(args.rounds)]
        healthz = p50_ms(metrics, "/healthz", n=50)
    p50 = {k: statistics.median(r[k] for r in rounds) * 1000 for k in rounds[0]}
    store = "Redis" if args.redis_url else "the database"
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"web sign-in on {backend}, {args.rounds} rounds, rate limits in {store}, p50 ms:")
    for name, value in p50.items():
        print(f"  {name:28} {value:8.2f}")
    share = p50["gatehouse share"]
    print(f"  {'GET /healthz (baseline)':28} {healthz:8.2f}")
    print(f"ratio gatehouse share / sign-in total   {share / p50['sign-in total']:6.2f}")
    print(f"ratio gatehouse share / healthz         {share / healthz:6.1f}x")
    verdict = "OK" if share <= TARGET_MS else "ABOVE TARGET"
    print(f"gatehouse share p50 {share:.2f} ms (target <= {TARGET_MS:.0f} ms) {verdict}")
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
