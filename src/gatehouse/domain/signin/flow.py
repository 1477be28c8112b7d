"""The web flow's one-time record: written by :func:`start_flow`, consumed by the callback.

Flow state lives in the database (``oidc_flows``), encrypted, keyed by the SHA-256 of ``state``
and bound to the browser by the SHA-256 of a random cookie: any replica can finish a flow, and a
flow is consumed (deleted, in its own committed transaction) before anything else is checked,
so a replayed callback always fails.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, insert

from gatehouse.domain.crypto import DecryptionError, EncryptionContext, random_token, sha256_hex
from gatehouse.domain.idp import IdPContext, IdPNotConfigured
from gatehouse.domain.signin.common import (
    SignInError,
    SignInServices,
    idp_unavailable,
    provider_metadata,
)
from gatehouse.oidc import FlowSecrets, ProviderMetadata, build_authorization_request
from gatehouse.store.models import OIDCFlow, utcnow

CALLBACK_PATH = "/auth/oidc/callback"
FLOW_LIFETIME = timedelta(minutes=10)

Purpose = Literal["login", "test"]


@dataclass(frozen=True)
class FlowStart:
    """Where to send the browser, and the browser-binding cookie value to set."""

    url: str
    browser_secret: str


@dataclass(frozen=True)
class Flow:
    """A consumed flow record: what the callback checks the IdP's answer against."""

    purpose: Purpose
    secrets: FlowSecrets
    return_to: str
    prompt: str | None
    config_version: int


#: what a start may ask the IdP for: ``none`` (silent re-authentication), or another account
Prompt = Literal["none", "login", "select_account"]


def prompt_for(metadata: ProviderMetadata, wanted: str | None) -> str | None:
    """The ``prompt`` to send. ``select_account`` ("use another account") only where the IdP
    advertises it in ``prompt_values_supported``; elsewhere ``login`` (OIDC Core 3.1.2.1: every
    OP knows it), which asks for credentials again instead of reusing the IdP session."""
    if wanted == "select_account":
        supported = metadata.prompt_values_supported or ()
        return "select_account" if "select_account" in supported else "login"
    return wanted if wanted in ("none", "login") else None


def _valid_browser_secret(value: str | None) -> bool:
    return value is not None and 32 <= len(value) <= 128


def start_flow(
    svc: SignInServices,
    *,
    return_to: str,
    purpose: Purpose,
    browser_secret: str | None,
    prompt: str | None = None,
    ctx: IdPContext | None = None,
) -> FlowStart:
    """Build the authorization request and store its secrets (one-time, bound to the browser).

    :raises IdPNotConfigured: no configuration
    :raises SignInError: ``idp_unavailable`` (discovery failed, or the IdP does not answer
        the probe of its authorization endpoint)
    """
    ctx = ctx if ctx is not None else svc.idp.current()
    metadata = provider_metadata(ctx, step="start")
    reachable = svc.reachability.check(ctx.http, metadata.authorization_endpoint)
    if not reachable.ok:  # never send the browser to an IdP that does not answer us
        raise idp_unavailable("start", reachable.reason)
    prompt = prompt_for(metadata, prompt)
    url, secrets = build_authorization_request(
        metadata,
        ctx.settings.client_id,
        svc.public_url + CALLBACK_PATH,
        ctx.settings.request_scopes(metadata),
        prompt=prompt,
    )
    browser = browser_secret if _valid_browser_secret(browser_secret) else random_token(32)
    assert browser is not None
    state_hash = sha256_hex(secrets.state)
    payload = json.dumps({"secrets": secrets.as_dict(), "return_to": return_to, "prompt": prompt})
    now = utcnow()
    # A flow lost in a database crash only means signing in again: a relaxed write. Expired
    # flows are deleted by housekeeping.
    with svc.db.relaxed() as conn:
        conn.execute(
            insert(OIDCFlow).values(
                state_hash=state_hash,
                browser_hash=sha256_hex(browser),
                purpose=purpose,
                data_enc=svc.box.encrypt_str(
                    payload, context=EncryptionContext.OIDC_FLOW + state_hash
                ),
                config_version=ctx.version,
                created_at=now,
                expires_at=now + FLOW_LIFETIME,
            )
        )
    return FlowStart(url=url, browser_secret=browser)


def consume_flow(
    svc: SignInServices, state: str, browser_secret: str | None
) -> tuple[Flow, IdPContext, bool]:
    """Find the flow by ``state`` and delete it, then check browser and expiry.

    The deletion is one ``DELETE … RETURNING`` (one round trip, atomic): of two callbacks with
    the same state, one gets the flow. Returns (flow, current context, OIDC active).

    :raises SignInError: ``bad_state``, ``browser_mismatch``, ``flow_expired``,
        ``idp_not_configured``
    """
    state_hash = sha256_hex(state)
    with svc.db.relaxed() as conn:
        row = conn.execute(
            delete(OIDCFlow)
            .where(OIDCFlow.state_hash == state_hash)
            .returning(
                OIDCFlow.browser_hash,
                OIDCFlow.purpose,
                OIDCFlow.data_enc,
                OIDCFlow.config_version,
                OIDCFlow.expires_at,
            )
        ).first()
    if row is None:
        raise SignInError(
            "This sign-in link is unknown or was already used. Start again.", code="bad_state"
        )
    if not _valid_browser_secret(browser_secret) or not hmac.compare_digest(
        sha256_hex(browser_secret or ""), row.browser_hash
    ):
        raise SignInError(
            "This sign-in was started in another browser. Start again here.",
            code="browser_mismatch",
        )
    if utcnow() >= row.expires_at:
        raise SignInError("The sign-in took too long. Start again.", code="flow_expired")
    try:
        data = json.loads(
            svc.box.decrypt_str(row.data_enc, context=EncryptionContext.OIDC_FLOW + state_hash)
        )
    except (DecryptionError, ValueError) as exc:
        raise SignInError("The sign-in state is unreadable.", code="bad_state") from exc
    flow = Flow(
        purpose="test" if row.purpose == "test" else "login",
        secrets=FlowSecrets.from_dict(data["secrets"]),
        return_to=str(data.get("return_to") or "/"),
        prompt=data.get("prompt"),
        config_version=row.config_version,
    )
    active, ctx = svc.idp.active_context()
    if ctx is None:
        try:
            ctx = svc.idp.current()  # raises with the reason nothing is configured
        except IdPNotConfigured as exc:
            raise SignInError(exc.detail, code="idp_not_configured", status=409) from exc
    return flow, ctx, active
