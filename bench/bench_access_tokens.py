"""Measure the bearer hot path: signature verify RS256 vs ES256, and AccessTokenService.verify
cold (signature + claims) and warm (validated-token cache). One core; medians of 5 runs.

    .venv/bin/python bench/bench_access_tokens.py
"""

from __future__ import annotations

import statistics
import tempfile
import timeit
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gatehouse.domain.access_tokens import AccessTokenService
from gatehouse.domain.crypto import SecretBox
from gatehouse.store.db import Database
from gatehouse.store.migrate import upgrade


def per_call_us(fn: object, number: int) -> float:
    runs = timeit.repeat(fn, number=number, repeat=5)  # type: ignore[arg-type]
    return statistics.median(runs) / number * 1e6


def main() -> None:
    message = b"x" * 300
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_sig = rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    rsa_pub = rsa_key.public_key()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_sig = ec_key.sign(message, ec.ECDSA(hashes.SHA256()))
    ec_pub = ec_key.public_key()
    rs = per_call_us(
        lambda: rsa_pub.verify(rsa_sig, message, padding.PKCS1v15(), hashes.SHA256()), 2000
    )
    es = per_call_us(lambda: ec_pub.verify(ec_sig, message, ec.ECDSA(hashes.SHA256())), 2000)
    print(f"verify RS256 (2048): {rs:6.1f} µs   ES256 (P-256): {es:6.1f} µs   ratio {es / rs:.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'b.db'}")
        upgrade(db.engine)
        service = AccessTokenService(
            db.session,
            SecretBox(b"k" * 32),
            issuer="https://gh",
            audience="https://gh",
            lifetime=timedelta(minutes=10),
        )
        service.load_keys()
        token, _ = service.issue("1", {"roles": [{"role": "Developer", "environment": None}]})
        cold = per_call_us(
            lambda: service._verify_uncached(token, 0.0 + __import__("time").time()), 2000
        )
        service.verify(token)
        warm = per_call_us(lambda: service.verify(token), 20000)
        issue = per_call_us(lambda: service.issue("1"), 200)
        print(f"AccessTokenService.verify cold: {cold:6.1f} µs   warm (cache hit): {warm:5.2f} µs")
        print(f"AccessTokenService.issue (RS256 sign): {issue:7.1f} µs")
        db.dispose()


if __name__ == "__main__":
    main()
