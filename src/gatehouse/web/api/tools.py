"""Sign-in for tools: what they need to know about the IdP, the token exchange, our keys.

``GET /api/v1/auth/idp-config`` is public and cacheable: a tool needs nothing but the server's
URL. ``POST /api/v1/auth/token`` turns a fresh native-client ID token into a Gatehouse access
token; ``POST /api/v1/auth/token/renew`` renews it when the IdP's refresh brought no new ID
token (OIDC Core 12.2). ``GET /api/v1/auth/jwks`` publishes the keys those tokens are signed with.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from gatehouse.domain import token_exchange
from gatehouse.domain.idp import IdPNotConfigured
from gatehouse.domain.ratelimit import TOKEN_EXCHANGE
from gatehouse.metrics import IDP_UNAVAILABLE
from gatehouse.oidc import OIDCError
from gatehouse.runtime import Runtime
from gatehouse.web.api.schemas import StrictModel, TokenOut, error_responses
from gatehouse.web.deps import RuntimeDep
from gatehouse.web.net import client_ip

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class IdPConfigOut(BaseModel):
    enabled: bool = Field(description="Whether single sign-on through the IdP is active.")
    issuer: str | None = Field(description="The IdP's issuer identifier (OIDC discovery).")
    client_id: str | None = Field(description="The native (tools') client id at the IdP.")
    scopes: list[str] = Field(description="Scopes to request.")
    device_flow: bool = Field(description="Whether the IdP offers the device flow (RFC 8628).")
    display_name: str | None = Field(default=None, description="The IdP's name, for messages.")


class ExchangeIn(StrictModel):
    id_token: str = Field(max_length=16384, description="An ID token issued to the native client.")
    idp_access_token: str | None = Field(
        default=None,
        max_length=16384,
        description="The IdP access token issued with it: used for UserInfo only when the ID "
        "token lacks a claim that user matching needs.",
    )


class RenewIn(StrictModel):
    previous_token: str = Field(
        max_length=8192,
        description="The Gatehouse access token the tool holds (it may have expired).",
    )
    idp_access_token: str = Field(
        max_length=16384, description="The access token of the IdP's refresh response."
    )


def idp_config(rt: Runtime) -> IdPConfigOut:
    """What tools need; ``enabled`` is false until OIDC is active with a native client."""
    disabled = IdPConfigOut(
        enabled=False, issuer=None, client_id=None, scopes=[], device_flow=False
    )
    if not rt.idp.is_active():
        return disabled
    try:
        ctx = rt.idp.current()
    except IdPNotConfigured:
        return disabled
    settings = ctx.settings
    if not settings.native_client_id:
        return disabled
    scopes = list(settings.scopes)
    device_flow = False
    try:
        metadata = ctx.metadata()
        scopes = settings.request_scopes(metadata)
        device_flow = metadata.device_authorization_endpoint is not None
    except OIDCError:
        # Discovery is down: tools will say so themselves; the rest is still right.
        IDP_UNAVAILABLE.labels(step="idp_config").inc()
    return IdPConfigOut(
        enabled=True,
        issuer=settings.issuer,
        client_id=settings.native_client_id,
        scopes=scopes,
        device_flow=device_flow,
        display_name=settings.display_name or None,
    )


def _cached_json(request: Request, body: dict[str, Any], max_age: int) -> Response:
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(payload, media_type="application/json", headers=headers)


@router.get(
    "/idp-config",
    response_model=IdPConfigOut,
    summary="Public: the IdP metadata tools need (issuer, native client id, scopes)",
)
def get_idp_config(request: Request, rt: RuntimeDep) -> Response:
    return _cached_json(request, idp_config(rt).model_dump(), max_age=60)


#: what the token endpoints may answer besides 200
_TOKEN_REFUSALS = error_responses(401, 403, 409, 429, 503)


def _token_answer(result: token_exchange.Exchanged) -> JSONResponse:
    out = TokenOut(access_token=result.access_token, expires_in=result.expires_in)
    return JSONResponse(out.model_dump(), headers={"Cache-Control": "no-store"})


@router.post(
    "/token",
    response_model=TokenOut,
    responses=_TOKEN_REFUSALS,
    summary="Exchange a fresh native-client ID token for a Gatehouse access token",
)
def exchange(body: ExchangeIn, request: Request, rt: RuntimeDep) -> JSONResponse:
    ip = client_ip(request)
    rt.ratelimit.hit(TOKEN_EXCHANGE, ip)
    return _token_answer(
        token_exchange.exchange_id_token(
            rt.signin, body.id_token, ip=ip, idp_access_token=body.idp_access_token
        )
    )


@router.post(
    "/token/renew",
    response_model=TokenOut,
    responses=_TOKEN_REFUSALS,
    summary="Renew a tool's Gatehouse token after an IdP refresh that brought no new ID token",
)
def renew(body: RenewIn, request: Request, rt: RuntimeDep) -> JSONResponse:
    ip = client_ip(request)
    rt.ratelimit.hit(TOKEN_EXCHANGE, ip)  # one budget with the exchange
    return _token_answer(
        token_exchange.renew_access_token(
            rt.signin, body.previous_token, body.idp_access_token, ip=ip
        )
    )


@router.get("/jwks", summary="Gatehouse's public signing keys (JWK Set)")
def jwks(request: Request, rt: RuntimeDep) -> Response:
    return _cached_json(request, rt.tokens.jwks(), max_age=300)
