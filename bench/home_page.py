"""(f) The console's home page at 1,000 and 100,000 audit rows.

    python bench/home_page.py [--backends sqlite,postgres] [--rows 100000]

For each backend one `gatehouse serve` runs while audit rows are bulk-inserted (not through the
API): 30 days of events, seven in ten of them sign-ins (web, password, tools) with one in ten
failed, plus changes, warnings and failed session refreshes. At 1,000 rows and at the full size
it measures the p50 of ``GET /`` (the home page: its aggregates, charts and problem lists) and
two baselines in the same run, on the same server and client: ``GET /healthz`` (no database)
and ``GET /account`` (a simple console page: session, one user, a template).

Printed: p50 in ms; ``x healthz`` and ``x account`` (p50 / each baseline's p50); ``growth``
(home p50 at the full size / home p50 at 1,000 rows). Targets: home p50 < 50 ms at 100,000
rows, growth < 2 (every figure is an index range or an index-only aggregate, see
migration 0011 and domain/dashboard.py).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import admin_token, gatehouse_server, p50_ms, throwaway_postgres
from sqlalchemy import create_engine, insert

from gatehouse.store.models import AuditEvent

REQUESTS = 40
SIGN_INS = ("login.oidc", "login.password", "token.exchange")
REASONS = ("unknown_user", "bad_password", "access_denied", "idp_unavailable", "flow_expired")
OTHER = ("user.update", "user.create", "user.roles", "idp.test", "environment.versions")


def _event(rnd: random.Random, now: datetime) -> dict[str, Any]:
    """One audit row (every row has the same keys: one executemany)."""
    return {"target_type": None, "target_id": None, **_kind(rnd, now)}


def _kind(rnd: random.Random, now: datetime) -> dict[str, Any]:
    at = now - timedelta(seconds=rnd.randint(0, 30 * 24 * 3600))
    roll = rnd.random()
    if roll < 0.7:
        failed = rnd.random() < 0.1
        return {
            "at": at,
            "actor": f"user{rnd.randint(1, 5000)}",
            "action": rnd.choice(SIGN_INS),
            "outcome": "failure" if failed else "success",
            "reason": rnd.choice(REASONS) if failed else None,
            "details": {},
        }
    if roll < 0.71:
        return {
            "at": at,
            "actor": "session",
            "action": "session.refresh_failed",
            "outcome": "failure",
            "reason": "idp_unavailable",
            "details": {},
        }
    if roll < 0.72:
        return {
            "at": at,
            "actor": "user1",
            "action": "user.group_roles",
            "outcome": "warning",
            "reason": "groups_missing",
            "details": {},
        }
    return {
        "at": at,
        "actor": "bench-admin",
        "action": rnd.choice(OTHER),
        "outcome": "success",
        "reason": None,
        "target_type": "user",
        "target_id": str(rnd.randint(1, 5000)),
        "details": {"n": rnd.randint(1, 9)},
    }


def seed(database_url: str, count: int, rnd: random.Random) -> None:
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for start in range(0, count, 5000):
            rows = [_event(rnd, now) for _ in range(min(5000, count - start))]
            conn.execute(insert(AuditEvent), rows)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE audit_events")
        else:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgres":
        with throwaway_postgres("gatehouse_bench_home") as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-home-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'gatehouse.db'}"


def run_backend(backend: str, sizes: list[int]) -> dict[int, dict[str, float]]:
    results: dict[int, dict[str, float]] = {}
    rnd = random.Random(7)
    seeded = 0
    with database(backend) as url, gatehouse_server(database_url=url) as server:
        headers = {"Authorization": f"Bearer {admin_token(server)}"}
        with httpx.Client(base_url=server, timeout=30) as client:
            for size in sizes:
                seed(url, size - seeded, rnd)
                seeded = size
                p50_ms(client, "/", n=3, headers=headers)  # warm up
                results[size] = {
                    "healthz": p50_ms(client, "/healthz", n=REQUESTS),
                    "account": p50_ms(client, "/account", n=REQUESTS, headers=headers),
                    "home": p50_ms(client, "/", n=REQUESTS, headers=headers),
                }
    return results


def report(backend: str, results: dict[int, dict[str, float]]) -> bool:
    sizes = sorted(results)
    first = results[sizes[0]]["home"]
    ok = True
    print(f"\n{backend}: GET / (home page), p50 over {REQUESTS} requests")
    print(
        f"{'audit rows':>11} {'healthz':>9} {'account':>9} {'home':>9} {'x healthz':>10} "
        f"{'x account':>10} {'growth':>7}"
    )
    for size in sizes:
        row = results[size]
        growth = row["home"] / first
        print(
            f"{size:>11,} {row['healthz']:>7.2f}ms {row['account']:>7.2f}ms {row['home']:>7.2f}ms "
            f"{row['home'] / row['healthz']:>10.1f} {row['home'] / row['account']:>10.2f} "
            f"{growth:>7.2f}"
        )
    last = results[sizes[-1]]
    if last["home"] >= 50:
        print(f"  FAIL: home p50 {last['home']:.1f} ms >= 50 ms at {sizes[-1]:,} rows")
        ok = False
    if last["home"] / first >= 2:
        print(f"  FAIL: home p50 grew {last['home'] / first:.2f}x from {sizes[0]:,} rows")
        ok = False
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    sizes = [1_000, args.rows]
    ok = True
    for backend in args.backends.split(","):
        ok = report(backend, run_backend(backend, sizes)) and ok
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
