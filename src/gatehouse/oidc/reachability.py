"""Why an IdP cannot be reached, in words, and a cheap probe of whether it can.

A failed request to an IdP has a handful of causes an administrator acts on differently: the
name does not resolve (DNS), nothing listens (connection refused), the TLS handshake fails
(certificate, protocol), or nothing answers in time (a firewall dropping packets). :func:`cause`
names the one behind an httpx error by walking the exception chain down to the socket error;
:func:`probe` asks the authorization endpoint's origin once, with a short timeout, so that a
sign-in never sends a browser to an IdP the server itself cannot reach.

Sentences name hosts and error classes only: never a URL's query, a token or a secret.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

__all__ = ["PROBE_TIMEOUT", "Reachability", "cause", "probe"]

#: the probe's whole budget: a reachable IdP answers a HEAD far faster than this
PROBE_TIMEOUT = httpx.Timeout(3.0, connect=2.0)

_REFUSED = (errno.ECONNREFUSED, errno.ECONNRESET)
_UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 12:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def cause(exc: BaseException) -> str:
    """The reason behind a failed request, as a few words: ``connection refused``, ``DNS:
    the name does not resolve``, ``TLS: …``, ``timed out``, or the error's class name."""
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain).lower()
    for e in chain:
        if isinstance(e, httpx.TimeoutException | TimeoutError | socket.timeout):
            return "timed out"
        if isinstance(e, socket.gaierror):
            return "DNS: the name does not resolve"
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS: the certificate is not trusted ({e.verify_message or 'verify failed'})"
        if isinstance(e, ssl.SSLError):
            return f"TLS: the handshake failed ({e.reason or 'protocol error'})"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) in _REFUSED:
            return "connection refused"
        if getattr(e, "errno", None) in _UNREACHABLE:
            return "no route to the host"
    # httpcore keeps only the message of the socket error for some failures
    if "name or service not known" in text or "nodename nor servname" in text:
        return "DNS: the name does not resolve"
    if "temporary failure in name resolution" in text or "no address associated" in text:
        return "DNS: the name does not resolve"
    if "connection refused" in text or "connect call failed" in text:
        return "connection refused"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "TLS: the handshake failed"
    if "timed out" in text:
        return "timed out"
    return type(exc).__name__


@dataclass(frozen=True)
class Reachability:
    """The outcome of :func:`probe`: ``ok``, or ``reason`` (the host and :func:`cause`)."""

    ok: bool
    reason: str = ""


def probe(http: httpx.Client, url: str, *, timeout: httpx.Timeout = PROBE_TIMEOUT) -> Reachability:
    """Whether the origin of ``url`` answers at all: one HEAD to ``url`` without its query.

    Any HTTP answer counts as reachable (an authorization endpoint asked nothing answers 400 or
    405), except 502/503/504, which a proxy sends for an IdP that is down behind it.
    """
    parts = urlsplit(url)
    target = f"{parts.scheme}://{parts.netloc}{parts.path or '/'}"
    try:
        response = http.request("HEAD", target, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Reachability(False, f"{parts.hostname}: {cause(exc)}")
    if response.status_code in (502, 503, 504):
        return Reachability(False, f"{parts.hostname}: answered HTTP {response.status_code}")
    return Reachability(True)
