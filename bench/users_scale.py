"""(c) The users page and user search through the API at 1,000, 10,000 and 100,000 users.

    python bench/users_scale.py [--backends sqlite,postgres] [--sizes 1000,10000,100000]

For each backend (SQLite, and PostgreSQL in a throwaway database) one `gatehouse serve` runs
while users are bulk-inserted (not through the API) in steps up to each size. At each size it
measures the p50 of ``GET /api/v1/users`` (first page, sorted by username and by newest),
prefix searches that match many, few and no users, and ``GET /healthz`` (the baseline: the same
server, the same client, no database).

Printed per query: p50 in ms; ``x base`` = p50 / the healthz p50 of that size (the cost of the
query over a request that does nothing); ``growth`` = p50 at this size / p50 at the smallest
size. Targets: p50 < 50 ms at 100,000 users, and growth no worse than logarithmic, i.e.
growth <= log(N) / log(smallest N) (1.67 from 1,000 to 100,000).
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import admin_token, gatehouse_server, p50_ms, throwaway_postgres
from sqlalchemy import create_engine, insert, text

from gatehouse.store.models import User

FIRST = [
    "anna",
    "ben",
    "carla",
    "david",
    "emma",
    "felix",
    "greta",
    "hugo",
    "ines",
    "jonas",
    "karin",
    "leo",
    "maria",
    "noah",
    "olga",
    "paul",
    "quinn",
    "rosa",
    "sven",
    "tara",
    "ugo",
    "vera",
    "walter",
    "xenia",
    "yusuf",
    "zoe",
]
LAST = [
    "adams",
    "baker",
    "clark",
    "dubois",
    "evans",
    "fischer",
    "garcia",
    "hansen",
    "ito",
    "jensen",
    "klein",
    "lopez",
    "martin",
    "novak",
    "olsen",
    "petrov",
    "quist",
    "rossi",
    "schmidt",
    "tanaka",
    "urban",
    "vogel",
    "weber",
    "xu",
    "young",
    "zimmer",
]
REQUESTS = 60
QUERIES = {
    "page 1, by username": "/api/v1/users?per_page=50",
    "page 1, newest first": "/api/v1/users?per_page=50&sort=-created_at",
    "search, many match": "/api/v1/users?q=maria&per_page=50",
    "search, few match": "/api/v1/users?q=zoe.zimmer1&per_page=50",
    "search, none match": "/api/v1/users?q=nobody-here&per_page=50",
}


def seed(database_url: str, start: int, stop: int) -> None:
    """Insert users ``start``..``stop-1`` in bulk (executemany), as an import would."""
    rng = random.Random(start)
    engine = create_engine(database_url)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(start, stop):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first}.{last}{i}"
            rows.append(
                {
                    "username": name,
                    "username_key": name,
                    "email": f"{name}@example.com",
                    "email_key": f"{name}@example.com",
                    "display_name": f"{first.title()} {last.title()}",
                    "status": "active" if i % 20 else "disabled",
                    "local_admin": False,
                    "must_change_password": False,
                    "created_at": base + timedelta(minutes=i),
                    "updated_at": base + timedelta(minutes=i),
                    "last_sign_in_at": base + timedelta(minutes=rng.randrange(10**6))
                    if i % 3
                    else None,
                    "revision": 0,
                }
            )
            if len(rows) == 10_000:
                conn.execute(insert(User), rows)
                rows.clear()
        if rows:
            conn.execute(insert(User), rows)
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE users"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgres":
        with throwaway_postgres() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="gatehouse-bench-db-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def run_backend(backend: str, sizes: list[int]) -> dict[int, dict[str, float]]:
    results: dict[int, dict[str, float]] = {}
    with database(backend) as url, gatehouse_server(database_url=url) as server:
        headers = {"Authorization": f"Bearer {admin_token(server)}"}
        seeded = 1  # the bootstrapped admin
        with httpx.Client(base_url=server, timeout=30) as client:
            for size in sizes:
                began = time.perf_counter()
                seed(url, seeded, size)
                seeded = size
                print(
                    f"  {backend}: seeded {size:>7,} users in {time.perf_counter() - began:5.1f} s"
                )
                for path in QUERIES.values():  # warm-up
                    p50_ms(client, path, n=3, headers=headers)
                row = {"healthz": p50_ms(client, "/healthz", n=REQUESTS)}
                for label, path in QUERIES.items():
                    row[label] = p50_ms(client, path, n=REQUESTS, headers=headers)
                results[size] = row
    return results


def report(backend: str, results: dict[int, dict[str, float]]) -> bool:
    sizes = sorted(results)
    smallest, largest = sizes[0], sizes[-1]
    ok = True
    print(f"\n{backend}: p50 ms (x base = / healthz p50; growth = / p50 at {smallest:,} users)")
    print(f"  {'query':24}" + "".join(f"{n:>22,}" for n in sizes))
    print(
        f"  {'GET /healthz (baseline)':24}"
        + "".join(f"{results[n]['healthz']:>22.2f}" for n in sizes)
    )
    for label in QUERIES:
        cells = []
        for n in sizes:
            p50 = results[n][label]
            base = p50 / results[n]["healthz"]
            growth = p50 / results[smallest][label]
            cells.append(f"{p50:7.2f} {base:5.1f}x {growth:5.2f}g")
        limit = math.log(largest) / math.log(smallest)
        growth = results[largest][label] / results[smallest][label]
        verdict = results[largest][label] < 50 and growth <= limit
        ok &= verdict
        print(
            f"  {label:24}"
            + "".join(f"{c:>22}" for c in cells)
            + ("  OK" if verdict else "  MISSED")
        )
    print(
        f"  targets: p50 < 50 ms at {largest:,}; growth <= log({largest:,})/log({smallest:,}) "
        f"= {math.log(largest) / math.log(smallest):.2f}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    began = time.perf_counter()
    verdicts = []
    for backend in args.backends.split(","):
        verdicts.append(report(backend, run_backend(backend, sizes)))
    print(
        f"\n{'ALL TARGETS MET' if all(verdicts) else 'SOME TARGETS MISSED'} "
        f"({time.perf_counter() - began:.0f} s)"
    )


if __name__ == "__main__":
    main()
