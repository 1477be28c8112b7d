"""Request and response bodies of the JSON API. Unknown fields are refused."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gatehouse.domain import users
from gatehouse.domain.user_cache import UserSnapshot
from gatehouse.store.models import User


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class ErrorBody(BaseModel):
    error: str
    detail: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these statuses, all with the ``{"error","detail"}`` body."""
    return {status: {"model": ErrorBody} for status in statuses}


class LocalLoginIn(StrictModel):
    username: str = Field(max_length=150)
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int


class RoleGrantBody(StrictModel):
    role: str = Field(max_length=64, description="Administrator, Developer or Viewer")
    environment: str | None = Field(
        default=None, max_length=64, description="Environment name; null means every environment"
    )


class MeOut(BaseModel):
    id: int
    username: str
    email: str | None
    display_name: str
    local_admin: bool
    roles: list[RoleGrantBody]
    is_admin: bool
    auth_method: str

    @classmethod
    def of(cls, snap: UserSnapshot, method: str) -> MeOut:
        """The caller's snapshot (the fields declared here, nothing more) and how it signed in."""
        return cls.model_validate({**asdict(snap), "auth_method": method})


class UserCreateIn(StrictModel):
    username: str = Field(max_length=150)
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=1024)
    local_admin: bool = False
    roles: list[RoleGrantBody] = Field(default_factory=list, max_length=100)


class UserUpdateIn(StrictModel):
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)
    status: Literal["active", "disabled"] | None = None
    local_admin: bool | None = None


class PasswordIn(StrictModel):
    password: str = Field(max_length=1024)


class OwnPasswordIn(StrictModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class RolesIn(StrictModel):
    roles: list[RoleGrantBody] = Field(max_length=100)


class IdentityOut(BaseModel):
    issuer: str
    subject: str


class UserOut(BaseModel):
    id: int
    username: str
    email: str | None
    display_name: str
    status: str
    local_admin: bool
    has_password: bool
    password_allowed: bool
    password_policy: str | None
    external_identity: IdentityOut | None
    roles: list[RoleGrantBody]
    created_at: datetime
    updated_at: datetime
    last_sign_in_at: datetime | None

    @classmethod
    def of(cls, user: User, *, policy_reason: str | None) -> UserOut:
        identity = None
        if user.idp_issuer and user.idp_subject:
            identity = IdentityOut(issuer=user.idp_issuer, subject=user.idp_subject)
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            display_name=user.display_name,
            status=user.status,
            local_admin=user.local_admin,
            has_password=user.password_hash is not None,
            password_allowed=policy_reason is None,
            password_policy=policy_reason,
            external_identity=identity,
            roles=[
                RoleGrantBody(role=g.role, environment=g.environment)
                for g in users.effective_roles(user)
            ],
            created_at=user.created_at,
            updated_at=user.updated_at,
            last_sign_in_at=user.last_sign_in_at,
        )


class Page(BaseModel):
    total: int
    page: int
    per_page: int


class UserPage(Page):
    items: list[UserOut]
    total_is_estimate: bool = Field(
        default=False,
        description="True when counting stopped at a bound (10,000): more than `total` users "
        "match, and pages past total/per_page may exist.",
    )


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_id: int | None
    action: str
    outcome: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    reason: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_before_id: int | None


class RoleOut(BaseModel):
    name: str
    description: str
