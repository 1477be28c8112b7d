"""Registered apps: custom apps that use Gatehouse as their user provider, and where Gatehouse may
send a browser back to.

An app lists the exact origins (``https://app.example.com``) or URL prefixes
(``https://app.example.com/admin/``) users may be returned to. Entries are validated strictly and
stored canonical (lowercase scheme and host, IDNA A-labels, no default port), so that checking a
``return_to`` is an exact comparison of ``(scheme, host, port)`` and never a pattern match.

``check_return_to`` is the single judge of redirect targets: a plain path on Gatehouse, an URL on
Gatehouse's own origin, or an URL on a registered origin (under its path prefix, if any).
Everything else raises ``InvalidReturnTo``; the caller never gets a "cleaned" variant of a hostile
value, because every normalisation is a chance to disagree with the browser.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import idna
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from gatehouse.domain import audit
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import Conflict, InvalidInput, NotFound
from gatehouse.settings import is_loopback_host
from gatehouse.store.models import App

NAME_MAX = 100
MAX_ORIGINS = 50
URL_MAX = 2048
_DEFAULT_PORTS = {"https": 443, "http": 80}
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
#: RFC 3986 pchar plus "/", without "%" (no encoded bytes in a registered prefix).
_PREFIX_CHARS = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")
_DOT_SEGMENT = re.compile(r"(^|/)(\.|%2e){1,2}(/|$)", re.IGNORECASE)


class InvalidReturnTo(InvalidInput):
    """``return_to`` is not a plain local path or a URL of a registered app."""

    code = "invalid_return_to"


class InvalidOrigin(InvalidInput):
    code = "invalid_origin"


@dataclass(frozen=True, order=True)
class Origin:
    """A canonical registered target: scheme, host (A-labels), port, and a path prefix."""

    scheme: str
    host: str
    port: int
    path: str = "/"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if _DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        path = "" if self.path == "/" else self.path
        return f"{self.scheme}://{host}{port}{path}"

    def admits(self, path: str) -> bool:
        if self.path == "/":
            return True
        prefix = self.path.rstrip("/")
        return (path == prefix or path.startswith(prefix + "/")) and not _DOT_SEGMENT.search(path)


# -- validating registered entries -------------------------------------------------------------
def _canonical_host(raw: str) -> str:
    """Lowercase, IDNA A-label host; IP literals as written by ``ipaddress``. Raises ValueError."""
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise ValueError("an IPv6 address must be written in brackets")
        ip6 = ipaddress.IPv6Address(raw[1:-1])
        return str(ip6)
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        pass
    if raw.endswith("."):
        raise ValueError("the host must not end with a dot")
    if not raw.isascii():
        raw = idna.encode(unicodedata.normalize("NFC", raw), uts46=True).decode("ascii")
    host = raw.lower()
    labels = host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ValueError("the host is not a valid DNS name")
    if labels[-1].isdigit():
        raise ValueError("the host is neither a DNS name nor an IP address")
    if any(label.startswith("xn--") for label in labels):
        idna.decode(host)  # refuse invalid punycode
    return host


def parse_origin(entry: object, *, allow_insecure_http: bool) -> Origin:
    """Validate one ``allowed_origins`` entry. https only (http only on loopback when allowed);
    no userinfo, wildcard, query, fragment, encoded bytes or dot segments."""
    if not isinstance(entry, str) or not entry or len(entry) > 500:
        raise InvalidOrigin("Each allowed origin must be a URL of at most 500 characters.")
    if any(c.isspace() or unicodedata.category(c) == "Cc" or c in "\\*%" for c in entry):
        raise InvalidOrigin(
            f"{entry!r} contains whitespace, control characters, '\\', '*' or '%'; "
            "give an exact origin such as https://app.example.com."
        )
    parts = urlsplit(entry)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not entry.lower().startswith(f"{scheme}://"):
        raise InvalidOrigin(f"{entry!r} must start with https://.")
    if parts.query or parts.fragment or "?" in entry or "#" in entry:
        raise InvalidOrigin(f"{entry!r} must not have a query or fragment.")
    if "@" in parts.netloc:
        raise InvalidOrigin(f"{entry!r} must not contain a user name or password.")
    hostport = parts.netloc
    host_raw, port_raw = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        host_raw, port_raw = hostport[: end + 1], hostport[end + 1 :].removeprefix(":")
        if end < 0 or (hostport[end + 1 :] and not hostport[end + 1 :].startswith(":")):
            raise InvalidOrigin(f"{entry!r} has a malformed host.")
    elif ":" in hostport:
        host_raw, _, port_raw = hostport.partition(":")
    try:
        host = _canonical_host(host_raw)
    except (ValueError, idna.IDNAError) as exc:
        raise InvalidOrigin(f"{entry!r}: {exc}.") from exc
    if port_raw and not (port_raw.isdigit() and 0 < int(port_raw) < 65536):
        raise InvalidOrigin(f"{entry!r} has an invalid port.")
    port = int(port_raw) if port_raw else _DEFAULT_PORTS[scheme]
    if scheme == "http" and not (allow_insecure_http and is_loopback_host(host)):
        raise InvalidOrigin(
            f"{entry!r} uses http; use https (http is only allowed on loopback addresses "
            "with GATEHOUSE_ALLOW_INSECURE_HTTP)."
        )
    path = parts.path or "/"
    if not _PREFIX_CHARS.match(path) or _DOT_SEGMENT.search(path) or "//" in path:
        raise InvalidOrigin(f"{entry!r} has a path that is not a plain prefix.")
    return Origin(scheme, host, port, path)


def parse_origins(entries: object, *, allow_insecure_http: bool) -> list[Origin]:
    if not isinstance(entries, list) or not entries or len(entries) > MAX_ORIGINS:
        raise InvalidOrigin(f"Give between 1 and {MAX_ORIGINS} allowed origins.")
    seen: dict[Origin, None] = {}
    for entry in entries:
        seen.setdefault(parse_origin(entry, allow_insecure_http=allow_insecure_http), None)
    return list(seen)


# -- judging return_to ---------------------------------------------------------------------------
def _refuse(why: str) -> InvalidReturnTo:
    return InvalidReturnTo(
        f"return_to {why}; it must be a path on Gatehouse or a URL of a registered app."
    )


def check_local_path(value: str) -> str:
    """A plain path on Gatehouse itself (``/users?q=a``), judged after up to three decodings."""
    candidate = value
    for _ in range(3):
        if candidate.startswith(("//", "/\\")) or not candidate.startswith("/"):
            raise _refuse("would leave Gatehouse")
        if any(c in "\\" or ord(c) < 0x21 or ord(c) == 0x7F for c in candidate):
            raise _refuse("contains a backslash, whitespace or a control character")
        decoded = _unquote(candidate)
        if decoded == candidate:
            break
        candidate = decoded
    return value


def _unquote(value: str) -> str:
    return unquote(value, errors="strict") if "%" in value else value


def check_return_to(value: object, registered: Iterable[Origin], own: Origin | None = None) -> str:
    """The redirect target if it is allowed, else ``InvalidReturnTo``. Never rewrites the value.

    Allowed: a plain path on Gatehouse, or an absolute ``http(s)`` URL whose scheme, host and
    port equal (exactly, after parsing) those of Gatehouse itself (``own``) or of a registered
    origin, and whose path lies under that origin's prefix.
    """
    if not isinstance(value, str) or not value:
        raise _refuse("is missing")
    if len(value) > URL_MAX:
        raise _refuse("is too long")
    if not value.isascii():
        raise _refuse("contains non-ASCII characters (percent-encode them)")
    if any(ord(c) < 0x21 or ord(c) == 0x7F or c == "\\" for c in value):
        raise _refuse("contains a backslash, whitespace or a control character")
    if value.startswith("/"):
        try:
            return check_local_path(value)
        except UnicodeDecodeError as exc:
            raise _refuse("is not valid percent-encoded UTF-8") from exc
    scheme = value.partition(":")[0]
    if scheme not in _DEFAULT_PORTS or not value.startswith(f"{scheme}://"):
        raise _refuse("is not an absolute https URL")
    parts = urlsplit(value)
    netloc = parts.netloc
    if not netloc or any(c in netloc for c in "@%") or netloc.endswith(":"):
        raise _refuse("has a user name, an encoded host or an empty port")
    host, port = _split_hostport(netloc, scheme)
    if parts.path and not parts.path.startswith("/"):
        raise _refuse("has a malformed path")
    target = Origin(scheme, host, port)
    path = parts.path or "/"
    for origin in (own, *registered):
        if (
            origin is not None
            and (origin.scheme, origin.host, origin.port) == (scheme, host, port)
            and (origin is own or origin.admits(path))
        ):
            return value
    raise _refuse(f"points to {target}, which is not a registered app")


def _split_hostport(netloc: str, scheme: str) -> tuple[str, int]:
    """Host exactly as written (must already be canonical) and port. Raises InvalidReturnTo."""
    if netloc.startswith("["):
        end = netloc.find("]")
        host_raw, rest = netloc[: end + 1], netloc[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise _refuse("has a malformed host")
        port_raw = rest[1:]
    else:
        host_raw, _, port_raw = netloc.partition(":")
    if port_raw and not (port_raw.isdigit() and len(port_raw) <= 5 and 0 < int(port_raw) < 65536):
        raise _refuse("has an invalid port")
    try:
        host = _canonical_host(host_raw)
    except (ValueError, idna.IDNAError) as exc:
        raise _refuse("has an invalid host") from exc
    written = host_raw[1:-1] if host_raw.startswith("[") else host_raw
    if host != written:
        raise _refuse("has a host that is not written canonically (lowercase, A-labels)")
    return host, int(port_raw) if port_raw else _DEFAULT_PORTS[scheme]


def own_origin(public_url: str) -> Origin:
    """Gatehouse's own origin (from ``GATEHOUSE_PUBLIC_URL``)."""
    return parse_origin(public_url, allow_insecure_http=True)


def unified_login_url(public_url: str, return_to: str, *, oidc_active: bool) -> str:
    """The URL that signs a browser in and ends at ``return_to`` (already checked)."""
    path = "/auth/oidc/start" if oidc_active else "/login"
    return f"{public_url}{path}?return_to={quote(return_to, safe='')}"


# -- the registry --------------------------------------------------------------------------------
_generation = 0
_generation_lock = threading.Lock()


def _bump_generation(_session: Session) -> None:
    global _generation
    with _generation_lock:
        _generation += 1


def _invalidate_on_commit(db: Session) -> None:
    """Caches drop the registry when this unit of work commits (not before: a reader between
    the write and the commit would otherwise cache the old state again)."""
    event.listen(db, "after_commit", _bump_generation, once=True)


class OriginCache:
    """Every registered origin, reloaded after ``ttl`` seconds or when an app changes in this
    process (other replicas see a change within ``ttl``).

    The load reads through a bare DBAPI connection: on SQLite every ORM transaction starts with
    ``BEGIN IMMEDIATE`` (the writer lock), so an ORM read from inside another open unit of work in
    the same thread would wait on itself. A bare ``SELECT`` in WAL mode (or on PostgreSQL) never
    waits for a writer, so ``resolve_return_to`` is safe to call from anywhere.
    """

    def __init__(self, raw_connect: Callable[[], Any], ttl: float = 5.0) -> None:
        self._connect = raw_connect
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded: tuple[float, int, tuple[Origin, ...]] | None = None

    def get(self) -> tuple[Origin, ...]:
        loaded = self._loaded
        now = time.monotonic()
        if loaded is not None and loaded[1] == _generation and now - loaded[0] < self.ttl:
            return loaded[2]
        generation = _generation
        origins = self._load()
        with self._lock:
            self._loaded = (now, generation, origins)
        return origins

    def invalidate(self) -> None:
        self._loaded = None

    def _load(self) -> tuple[Origin, ...]:
        conn = self._connect()
        try:
            cur = conn.cursor()
            cur.execute("SELECT allowed_origins FROM apps")
            rows = cur.fetchall()
            cur.close()
            conn.rollback()
        finally:
            conn.close()
        found: set[Origin] = set()
        for (raw,) in rows:
            entries = json.loads(raw) if isinstance(raw, str | bytes) else raw
            for entry in entries or ():
                try:
                    found.add(parse_origin(entry, allow_insecure_http=True))
                except InvalidOrigin:
                    continue  # stored before a stricter rule; never matches
        return tuple(sorted(found))


# -- writes ----------------------------------------------------------------------------------
def validate_name(raw: object) -> str:
    name = unicodedata.normalize("NFKC", raw).strip() if isinstance(raw, str) else ""
    if not name or len(name) > NAME_MAX or any(unicodedata.category(c)[0] == "C" for c in name):
        raise InvalidInput(
            f"The app name must be 1 to {NAME_MAX} printable characters.", code="invalid_name"
        )
    return name


def list_apps(db: Session) -> Sequence[App]:
    return db.scalars(select(App).order_by(App.name)).all()


def get_app(db: Session, app_id: int) -> App:
    app = db.get(App, app_id)
    if app is None:
        raise NotFound(f"There is no app with id {app_id}.")
    return app


def _name_taken(db: Session, name: str, except_id: int | None = None) -> bool:
    stmt = select(App.id).where(App.name == name)
    if except_id is not None:
        stmt = stmt.where(App.id != except_id)
    return db.scalar(stmt.limit(1)) is not None


def register_app(
    db: Session, actor: Actor, *, name: object, allowed_origins: object, allow_insecure_http: bool
) -> App:
    clean = validate_name(name)
    origins = parse_origins(allowed_origins, allow_insecure_http=allow_insecure_http)
    if _name_taken(db, clean):
        raise Conflict(f"An app named {clean!r} already exists.", code="app_name_taken")
    app = App(name=clean, allowed_origins=[str(o) for o in origins])
    db.add(app)
    db.flush()
    audit.record(
        db,
        actor,
        "app.registered",
        target_type="app",
        target_id=app.id,
        details={"name": clean, "allowed_origins": app.allowed_origins},
    )
    _invalidate_on_commit(db)
    return app


def update_app(
    db: Session,
    actor: Actor,
    app: App,
    *,
    allow_insecure_http: bool,
    name: object = None,
    allowed_origins: object = None,
) -> App:
    before = {"name": app.name, "allowed_origins": list(app.allowed_origins)}
    if name is not None:
        clean = validate_name(name)
        if _name_taken(db, clean, except_id=app.id):
            raise Conflict(f"An app named {clean!r} already exists.", code="app_name_taken")
        app.name = clean
    if allowed_origins is not None:
        origins = parse_origins(allowed_origins, allow_insecure_http=allow_insecure_http)
        app.allowed_origins = [str(o) for o in origins]
    db.flush()
    audit.record(
        db,
        actor,
        "app.updated",
        target_type="app",
        target_id=app.id,
        details={
            "before": before,
            "after": {"name": app.name, "allowed_origins": app.allowed_origins},
        },
    )
    _invalidate_on_commit(db)
    return app


def delete_app(db: Session, actor: Actor, app: App) -> None:
    audit.record(
        db,
        actor,
        "app.deleted",
        target_type="app",
        target_id=app.id,
        details={"name": app.name, "allowed_origins": list(app.allowed_origins)},
    )
    db.delete(app)
    _invalidate_on_commit(db)
