"""Client address resolution: X-Forwarded-For is believed only from configured proxies."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request


def client_ip(request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    trusted = request.app.state.runtime.trusted_proxies
    if not trusted or peer not in trusted:
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    # Walk from the nearest hop; the first address that is not a trusted proxy is the client.
    for hop in reversed(hops):
        if hop not in trusted:
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer
            return hop
    return peer
