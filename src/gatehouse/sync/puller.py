"""The environment server's sync loop: join once, then pull the feed and report heartbeats.

Runs in one daemon thread started with the app (``lifecycle.background_services``) when
``GATEHOUSE_ROLE`` is ``environment``. Failures never stop the server: it keeps serving its last
copy, and ``GET /api/v1/sync/status`` says how stale that copy is. Instance state lives in
``key_values``: ``sync.credential`` (console URL, the credential encrypted under this server's
key, a hash of the join token it came from) and ``sync.state`` (revision, IdP fingerprint, last
success, last error).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session

from gatehouse import PROTOCOL_VERSION, __version__
from gatehouse.domain.crypto import EncryptionContext, sha256_hex
from gatehouse.domain.environments import parse_component_versions
from gatehouse.metrics import REGISTRY
from gatehouse.settings import Settings
from gatehouse.store.models import SYNC_CREDENTIAL_KEY, SYNC_STATE_KEY, KeyValue
from gatehouse.sync import replica

log = logging.getLogger("gatehouse.sync")

#: The environment counts as stale after this many missed intervals.
STALE_AFTER_INTERVALS = 3

SYNC_PULLS = Counter(
    "gatehouse_sync_pull_total",
    "Environment sync cycles by outcome (ok, console_unreachable, credential_rejected, ...).",
    ["outcome"],
    registry=REGISTRY,
)
SYNC_AGE = Gauge(
    "gatehouse_sync_age_seconds",
    "Seconds since the environment last synced successfully (at the last cycle).",
    registry=REGISTRY,
)


class SyncError(Exception):
    """A sync step failed; ``code`` goes to the status (never the credential or a secret)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def _now() -> datetime:
    return datetime.now(UTC)


def _get(db: Session, key: str) -> dict[str, Any]:
    row = db.get(KeyValue, key)
    return dict(row.value) if row is not None else {}


def _put(db: Session, key: str, value: dict[str, Any]) -> None:
    row = db.get(KeyValue, key)
    if row is None:
        db.add(KeyValue(key=key, value=value))
    else:
        row.value = value


def read_status(db: Session, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """What ``/api/v1/sync/status`` shows; also the health reported to the console."""
    state = _get(db, SYNC_STATE_KEY)
    joined = bool(_get(db, SYNC_CREDENTIAL_KEY))
    last = state.get("last_success_at")
    age = None
    if last:
        age = round(((now or _now()) - datetime.fromisoformat(last)).total_seconds(), 1)
    stale = age is None or age > STALE_AFTER_INTERVALS * settings.sync_interval_seconds + 5
    return {
        "role": settings.role,
        "environment": (state.get("environment") or {}).get("name"),
        "joined": joined,
        "revision": state.get("revision"),
        "last_success_at": last,
        "seconds_since_sync": age,
        "stale": settings.role == "environment" and stale,
        "last_error": state.get("last_error"),
    }


@dataclass
class Credential:
    console_url: str
    secret: str


class EnvironmentSync:
    """One environment's sync loop. ``run_once`` is the unit tests drive; ``start`` loops it."""

    def __init__(
        self,
        rt: Any,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.rt = rt
        self.settings: Settings = rt.settings
        self.interval = float(self.settings.sync_interval_seconds)
        self.heartbeat_every = max(self.interval, min(60.0, 6 * self.interval))
        self.versions = parse_component_versions(self.settings.component_versions)
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        with self.rt.db.session() as db:
            environment = _get(db, SYNC_STATE_KEY).get("environment") or {}
        self.rt.users.environment_id = environment.get("id")
        self._thread = threading.Thread(target=self._loop, name="gatehouse-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.run_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    # -- one cycle ----------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Join if needed, heartbeat when due, pull every pending page. True on success."""
        try:
            credential = self._credential()
            if time.monotonic() - self._last_heartbeat >= self.heartbeat_every:
                self._heartbeat(credential)
            self._pull(credential)
        except SyncError as exc:
            SYNC_PULLS.labels(outcome=exc.code).inc()
            log.warning("sync failed (%s): %s", exc.code, exc)
            self._record(error=exc.code)
            with self.rt.db.session() as db:
                SYNC_AGE.set(read_status(db, self.settings)["seconds_since_sync"] or 0)
            return False
        SYNC_PULLS.labels(outcome="ok").inc()
        SYNC_AGE.set(0)
        return True

    def _request(self, method: str, url: str, credential: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        try:
            response = self._http.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise SyncError("console_unreachable", f"{type(exc).__name__} for {url}") from exc
        if response.status_code == 401:
            raise SyncError(
                "credential_rejected",
                "the console refused this environment's credential (deregistered?)",
            )
        if response.status_code >= 400:
            raise SyncError(
                f"http_{response.status_code}", f"{method} {url}: {response.text[:200]}"
            )
        return response

    def _credential(self) -> Credential:
        token = self.settings.join_token
        with self.rt.db.session() as db:
            stored = _get(db, SYNC_CREDENTIAL_KEY)
        fresh_token = token is not None and stored.get("join_token_hash") != sha256_hex(token)
        if stored and not fresh_token:
            secret = self.rt.box.decrypt_str(
                base64.b64decode(stored["credential_enc"]),
                context=EncryptionContext.SYNC_CREDENTIAL,
            )
            return Credential(stored["console_url"], secret)
        console = (self.settings.console_url or stored.get("console_url") or "").rstrip("/")
        if not console or token is None:
            raise SyncError(
                "not_joined",
                "this environment has not joined: start it with --console URL --join-token T",
            )
        response = self._request(
            "POST", f"{console}/api/v1/sync/join", None, json={"join_token": token}
        )
        body = response.json()
        secret = str(body["credential"])
        with self.rt.db.session() as db:
            _put(
                db,
                SYNC_CREDENTIAL_KEY,
                {
                    "console_url": console,
                    "credential_enc": base64.b64encode(
                        self.rt.box.encrypt_str(secret, context=EncryptionContext.SYNC_CREDENTIAL)
                    ).decode(),
                    "join_token_hash": sha256_hex(token),
                },
            )
            # A (re-)join starts from a full snapshot.
            _put(db, SYNC_STATE_KEY, {"environment": body["environment"]})
            replica.ensure_self(db, body["environment"])
        self.rt.users.environment_id = int(body["environment"]["id"])
        log.info("joined the console at %s as %s", console, body["environment"]["name"])
        return Credential(console, secret)

    def _heartbeat(self, credential: Credential) -> None:
        with self.rt.db.session() as db:
            health = read_status(db, self.settings)
        self._request(
            "POST",
            f"{credential.console_url}/api/v1/sync/heartbeat",
            credential.secret,
            json={
                "gatehouse_version": __version__,
                "protocol_version": PROTOCOL_VERSION,
                "versions": self.versions,
                "health": {
                    "stale": health["stale"],
                    "seconds_since_sync": health["seconds_since_sync"],
                    "revision": health["revision"],
                },
            },
        )
        self._last_heartbeat = time.monotonic()

    def _pull(self, credential: Credential) -> None:
        with self.rt.db.session() as db:
            state = _get(db, SYNC_STATE_KEY)
        url = f"{credential.console_url}/api/v1/sync/changes"
        since: int | None = state.get("revision")
        fingerprint = state.get("idp_fingerprint")
        snapshot: list[dict[str, Any]] = []
        cursor: int | None = None
        while True:
            params: dict[str, Any] = {}
            if since is not None:
                params["since"] = since
            if cursor is not None:
                params["cursor"] = cursor
            if fingerprint:
                params["idp"] = fingerprint
            response = self._request("GET", url, credential.secret, params=params)
            if response.status_code == 304:
                # every idle poll (each GATEHOUSE_SYNC_INTERVAL_SECONDS): DEBUG, never INFO
                log.debug("sync: no change since revision %s", since)
                self._record(error=None)
                return
            body = response.json()
            if body.get("protocol") != PROTOCOL_VERSION:
                raise SyncError("protocol_mismatch", f"console speaks {body.get('protocol')}")
            if body["full"]:
                snapshot.extend(body["users"])
                since = int(body["revision"])
                if body["more"]:
                    cursor = int(body["cursor"])
                    continue
            fingerprint = self._apply(body, snapshot if body["full"] else None)
            since = int(body["revision"])
            snapshot, cursor = [], None
            if not body["more"]:
                return

    def _apply(self, body: dict[str, Any], snapshot: list[dict[str, Any]] | None) -> str:
        """Apply one page (or a whole snapshot) and the new state in one transaction."""
        try:
            with self.rt.db.session() as db:
                env_id = replica.ensure_self(db, body["environment"]).id
                if snapshot is not None:
                    replica.apply_users(db, env_id, snapshot, full=True)
                else:
                    replica.apply_users(db, env_id, body["users"], body.get("deleted_users", ()))
                if body.get("idp") is not None:
                    replica.apply_idp(
                        db,
                        self.rt.box,
                        body["idp"],
                        allow_insecure_http=self.rt.settings.allow_insecure_http,
                    )
                state = _get(db, SYNC_STATE_KEY)
                state.update(
                    revision=int(body["revision"]),
                    idp_fingerprint=body["idp_fingerprint"],
                    environment=body["environment"],
                    last_success_at=_now().isoformat(),
                    last_error=None,
                )
                _put(db, SYNC_STATE_KEY, state)
        except (replica.ProtocolError, KeyError, TypeError, ValueError) as exc:
            raise SyncError("bad_page", f"could not apply a feed page: {exc}") from exc
        self.rt.users.environment_id = env_id
        self.rt.users.invalidate()
        if body.get("idp") is not None:
            _forget_idp(self.rt)
        log.info(
            "sync: applied revision %s (%d users%s%s)",
            body["revision"],
            len(snapshot if snapshot is not None else body["users"]),
            ", full copy" if snapshot is not None else "",
            ", identity provider" if body.get("idp") is not None else "",
        )
        return str(body["idp_fingerprint"])

    def _record(self, *, error: str | None) -> None:
        with self.rt.db.session() as db:
            state = _get(db, SYNC_STATE_KEY)
            state["last_error"] = error
            if error is None:
                state["last_success_at"] = _now().isoformat()
            _put(db, SYNC_STATE_KEY, state)


def _forget_idp(rt: Any) -> None:
    """Drop the runtime's cached IdP contexts so sign-in sees the synced configuration at once."""
    rt.idp.invalidate()
