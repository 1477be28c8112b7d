"""``/api/v1/tokens``: API tokens for automation (``web.deps`` accepts them as bearer tokens).

Any signed-in user manages their own tokens; administrators may list and revoke everyone's
(``?all=true``). A token cannot create another token: otherwise a short-lived, narrow token
could mint a year-long one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gatehouse.domain import api_tokens
from gatehouse.domain.errors import Forbidden
from gatehouse.domain.ratelimit import API_TOKENS
from gatehouse.store.models import ApiToken
from gatehouse.web.api.schemas import StrictModel, error_responses
from gatehouse.web.deps import CurrentUser, DbDep, RowId, RuntimeDep, actor_of, rate_limited
from gatehouse.web.principal import Principal

router = APIRouter(prefix="/api/v1", tags=["api tokens"])
ERRORS = error_responses(400, 401, 403, 404, 409, 429)


class TokenCreateIn(StrictModel):
    name: str = Field(max_length=100, description="What the token is for, e.g. 'CI deploy'.")
    scopes: list[str] = Field(
        default_factory=lambda: ["read"],
        max_length=3,
        description="read (always included), write, admin — never more than you hold.",
    )
    expires_in_days: int | None = Field(
        default=None, ge=1, le=365, description="Lifetime in days (default 30, at most 365)."
    )
    expires_at: datetime | None = Field(
        default=None, description="Or an exact expiry (ISO 8601 with zone), at most a year away."
    )


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool
    user_id: int

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            scopes=[str(s) for s in token.scopes],
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            active=api_tokens.is_active(token),
            user_id=token.user_id,
        )


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret. Shown this once; store it now.")


class TokenList(BaseModel):
    items: list[TokenOut]


def creator_scopes(principal: Principal) -> frozenset[str]:
    """What a new token may hold: the caller's scopes, without admin for non-admins."""
    if principal.method == "api_token":
        raise Forbidden(
            "An API token cannot create API tokens; sign in (browser or `gatehouse login`).",
            code="token_cannot_create_tokens",
        )
    held = set(principal.scopes)
    if not principal.user.is_admin:
        held.discard("admin")
    return frozenset(held)


@router.get("/tokens", response_model=TokenList, responses=ERRORS)
def list_tokens(
    principal: CurrentUser,
    db: DbDep,
    all_users: Annotated[
        bool, Query(alias="all", description="Administrators: everyone's tokens.")
    ] = False,
) -> TokenList:
    if all_users and not principal.is_admin:
        raise Forbidden("Only administrators can list everyone's tokens.")
    owner = None if all_users else principal.user.id
    return TokenList(items=[TokenOut.of(t) for t in api_tokens.list_tokens(db, user_id=owner)])


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreatedOut,
    responses=ERRORS,
    summary="Create an API token (the secret is in the response, once)",
    dependencies=[rate_limited(API_TOKENS)],
)
def create_token(
    body: TokenCreateIn, request: Request, principal: CurrentUser, db: DbDep, response: Response
) -> TokenCreatedOut:
    created = api_tokens.create_token(
        db,
        actor_of(request, principal),
        user_id=principal.user.id,
        name=body.name,
        scopes=body.scopes,
        allowed_scopes=creator_scopes(principal),
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenCreatedOut(**TokenOut.of(created.token).model_dump(), token=created.secret)


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    responses=ERRORS,
    dependencies=[rate_limited(API_TOKENS)],
)
def revoke_token(
    token_id: RowId, request: Request, principal: CurrentUser, db: DbDep, rt: RuntimeDep
) -> None:
    owner = None if principal.is_admin else principal.user.id
    api_tokens.revoke_token(db, actor_of(request, principal), token_id, owner_id=owner)
    db.flush()
    rt.api_tokens.forget()
