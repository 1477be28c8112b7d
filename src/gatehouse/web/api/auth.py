"""API authentication: local admin password → bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gatehouse.domain import local_auth, users
from gatehouse.domain.ratelimit import SIGN_IN
from gatehouse.metrics import PASSWORD_LOGIN
from gatehouse.web.api.schemas import ErrorBody, LocalLoginIn, TokenOut
from gatehouse.web.deps import DbDep, RuntimeDep
from gatehouse.web.net import client_ip

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/local",
    response_model=TokenOut,
    responses={401: {"model": ErrorBody}, 409: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    summary="Password sign-in for API clients (local admins; everyone while OIDC is off)",
)
def local_login(body: LocalLoginIn, request: Request, rt: RuntimeDep, db: DbDep) -> TokenOut:
    ip = client_ip(request)
    try:
        rt.ratelimit.hit(SIGN_IN, ip)
        user_id = local_auth.authenticate(
            rt.db.session, rt.lockout, body.username, body.password, ip
        )
    except Exception as exc:
        PASSWORD_LOGIN.labels(outcome=getattr(exc, "code", "error")).inc()
        raise
    PASSWORD_LOGIN.labels(outcome="ok").inc()
    user = users.get_user(db, user_id)
    users.mark_signed_in(user)
    token, lifetime = rt.tokens.issue(str(user.id), {"amr": ["pwd"], "method": "password"})
    return TokenOut(access_token=token, expires_in=lifetime)
