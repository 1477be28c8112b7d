"""(a) Authenticated API request vs an unauthenticated route on the same server.

    python bench/api_auth.py

Baseline: ``GET /healthz`` (same FastAPI stack, same worker). Measured: ``GET /api/v1/me`` with
a Gatehouse bearer token. Target: at least 0.85 of the baseline's throughput. The two are
interleaved (A B A B …) so drift on a shared VM hits both equally.
"""

from __future__ import annotations

import statistics

from _common import admin_token, gatehouse_server, wrk


def main() -> None:
    with gatehouse_server() as url:
        token = admin_token(url)
        header = f"Authorization: Bearer {token}"
        wrk(f"{url}/healthz", seconds=2)  # warm-up
        wrk(f"{url}/api/v1/me", seconds=2, header=header)
        base, auth = [], []
        for _ in range(3):
            base.append(wrk(f"{url}/healthz", seconds=5))
            auth.append(wrk(f"{url}/api/v1/me", seconds=5, header=header))
    b, a = statistics.median(base), statistics.median(auth)
    print(f"baseline GET /healthz          {b:8.0f} req/s (median of {len(base)})")
    print(f"bearer   GET /api/v1/me        {a:8.0f} req/s (median of {len(auth)})")
    ratio = a / b
    print(
        f"ratio authenticated/baseline   {ratio:8.2f}  (target >= 0.85) "
        f"{'OK' if ratio >= 0.85 else 'BELOW TARGET'}"
    )


if __name__ == "__main__":
    main()
