"""Which IT user an IdP identity is: the (issuer, subject) binding, first-sign-in matching, JIT.

Used by the web sign-in and by the tools' token exchange, so both reach the same user:

1. a user bound to ``(iss, sub)`` is that identity, whatever its email or username says today
   (OIDC Core 5.7: "the sub (subject) and iss (issuer) Claims, used together, are the only
   Claims that an RP can rely upon as a stable identifier for the End-User");
2. otherwise, on first sign-in, the configured claim (``preferred_username``, or ``email`` only
   when ``email_verified`` is true) is compared case-insensitively with the pre-created users; a
   claim that NFKC normalisation would change is refused, so two IdP accounts that differ only
   by width or compatibility forms never reach the same user (DESIGN: pinned details). The user
   found is then bound; a user already bound to another subject is never re-bound;
3. unknown identities are refused (``unknown_user``) unless just-in-time creation is enabled;
4. disabled users are refused (``account_disabled``).

Group-to-role rules (when a groups claim is configured) replace the user's ``source="group"``
role assignments at every sign-in; manual assignments are never touched.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, changes, users
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import DomainError, Forbidden
from gatehouse.domain.idp import IdPSettings
from gatehouse.store.models import Environment, Role, RoleAssignment, User, scope_key_for

__all__ = ["MatchPreview", "claims_needed", "match_user", "preview_match"]


class IdentityRefused(Forbidden):
    """The identity cannot sign in; ``code`` says why (``unknown_user`` …)."""


def _refuse(code: str, detail: str) -> IdentityRefused:
    return IdentityRefused(detail, code=code)


def claims_needed(settings: IdPSettings) -> tuple[str, ...]:
    """The claims matching needs: when the ID token lacks one, UserInfo is asked."""
    needed: list[str] = [settings.user_claim]
    if settings.user_claim == "email":
        needed.append("email_verified")
    if settings.groups_claim:
        needed.append(settings.groups_claim)
    return tuple(needed)


def _subject(claims: Mapping[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _refuse("invalid_identity", "The identity provider sent no subject identifier.")
    return sub


def _matching_value(settings: IdPSettings, claims: Mapping[str, Any]) -> str:
    """The claim value to compare with pre-created users, after every refusal rule."""
    name = settings.user_claim
    value = claims.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _refuse(
            "missing_claim",
            f"The identity provider did not send the {name} claim, which Gatehouse uses to "
            "recognise you. Ask an administrator.",
        )
    if name == "email" and claims.get("email_verified") is not True:
        # OIDC Core 5.1: email_verified "True if the End-User's e-mail address has been
        # verified; otherwise false." An unverified address proves nothing about its owner.
        raise _refuse(
            "email_not_verified",
            "Your email address is not verified at the identity provider, so Gatehouse cannot "
            "use it to recognise you. Verify it there, or ask an administrator.",
        )
    if unicodedata.normalize("NFKC", value) != value:
        raise _refuse(
            "claim_not_normalized",
            f"The {name} sent by the identity provider contains compatibility characters "
            "(for example full-width letters); Gatehouse refuses it so that two look-alike "
            "accounts can never reach the same user. Ask an administrator.",
        )
    return value


def _candidates(db: Session, settings: IdPSettings, value: str) -> list[User]:
    if settings.user_claim == "email":
        key = users.email_key(value)
        return list(db.scalars(select(User).where(User.email_key == key).order_by(User.id)))
    user = db.scalar(select(User).where(User.username_key == users.username_key(value)))
    return [user] if user is not None else []


MatchAction = Literal["bound", "bind", "create"]


@dataclass(frozen=True)
class _Resolution:
    action: MatchAction
    user: User | None
    value: str | None


def _resolve(
    db: Session, settings: IdPSettings, issuer: str, claims: Mapping[str, Any]
) -> _Resolution:
    sub = _subject(claims)
    bound = db.scalar(select(User).where(User.idp_issuer == issuer, User.idp_subject == sub))
    if bound is not None:
        return _Resolution("bound", bound, None)
    value = _matching_value(settings, claims)
    found = _candidates(db, settings, value)
    if len(found) > 1:
        raise _refuse(
            "ambiguous_user",
            f"Several Gatehouse users have the {settings.user_claim} sent by the identity "
            "provider; an administrator must make it unique.",
        )
    if found:
        user = found[0]
        if user.idp_subject is not None:
            raise _refuse(
                "already_bound",
                f"The Gatehouse user {user.username} is already linked to another account at "
                "the identity provider. Ask an administrator.",
            )
        return _Resolution("bind", user, value)
    if settings.jit_provisioning:
        return _Resolution("create", None, value)
    raise _refuse(
        "unknown_user",
        "You signed in at the identity provider, but there is no Gatehouse account for you. "
        "Ask an administrator to create one.",
    )


def _check_enabled(user: User) -> None:
    if user.status != "active":
        raise _refuse(
            "account_disabled", "Your Gatehouse account is disabled. Ask an administrator."
        )


def _groups(settings: IdPSettings, claims: Mapping[str, Any]) -> list[str] | None:
    if not settings.groups_claim:
        return None
    raw = claims.get(settings.groups_claim)
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [g for g in raw if isinstance(g, str)]
    return []  # configured but absent: group-derived roles are withdrawn (fail closed)


def _apply_group_roles(
    db: Session, actor: Actor, settings: IdPSettings, user: User, groups: Sequence[str]
) -> None:
    """Make the user's ``source="group"`` assignments exactly those the rules give."""
    member_of = set(groups)
    roles = {r.name: r for r in db.scalars(select(Role))}
    envs = {e.name.casefold(): e for e in db.scalars(select(Environment))}
    wanted: dict[tuple[int, str], tuple[Role, Environment | None]] = {}
    for rule in settings.group_role_rules:
        if rule.group not in member_of or rule.role not in roles:
            continue
        env = envs.get(rule.environment.casefold()) if rule.environment else None
        if rule.environment and env is None:
            continue  # a rule for an environment that no longer exists grants nothing
        role = roles[rule.role]
        scope = scope_key_for(env.id if env else None)
        wanted[(role.id, scope)] = (role, env)
    existing = {(a.role_id, a.scope_key): a for a in user.assignments}
    added: list[str] = []
    removed: list[str] = []
    for key, assignment in existing.items():
        if assignment.source == "group" and key not in wanted:
            user.assignments.remove(assignment)
            removed.append(f"{assignment.role.name}@{key[1]}")
    for key, (role, env) in wanted.items():
        if key in existing:
            continue  # already held (manually or by a group): nothing to add
        user.assignments.append(RoleAssignment.grant(role, env, source="group"))
        added.append(f"{role.name}@{key[1]}")
    if added or removed:
        db.flush()
        changes.touch(db, "user", user.id)
        audit.record(
            db,
            actor,
            "user.group_roles",
            target_type="user",
            target_id=user.id,
            details={"username": user.username, "added": added, "removed": removed},
        )


def _jit_username(value: str) -> str:
    return users.validate_username(value)


def _create_jit_user(db: Session, value: str, claims: Mapping[str, Any]) -> User:
    """Just-in-time provisioning: a new IT user named by the matching claim ``value``."""
    email = claims.get("email") if claims.get("email_verified") is True else None
    name = claims.get("name")
    try:
        return users.create_user(
            db,
            Actor.system("jit"),
            username=_jit_username(value),
            email=email if isinstance(email, str) else None,
            display_name=name if isinstance(name, str) else None,
        )
    except DomainError as exc:
        raise _refuse(
            "unknown_user",
            "There is no Gatehouse account for you and one could not be created "
            f"automatically ({exc.detail}). Ask an administrator.",
        ) from exc


def match_user(
    db: Session,
    settings: IdPSettings,
    issuer: str,
    claims: Mapping[str, Any],
    *,
    actor: Actor | None = None,
    ip: str | None = None,
) -> User:
    """The IT user of a verified identity; binds it on first sign-in, creates it when JIT is on.

    ``claims``: the verified ID token claims, completed by UserInfo (whose ``sub`` was checked).
    The binding and the group-derived roles are audited as done by ``actor``, by default the
    user signing in (from ``ip``): it is their sign-in that makes those changes.

    :raises IdentityRefused: ``unknown_user``, ``account_disabled``, ``email_not_verified``,
        ``missing_claim``, ``claim_not_normalized``, ``ambiguous_user``, ``already_bound``
    """
    resolution = _resolve(db, settings, issuer, claims)
    sub = _subject(claims)
    user = resolution.user
    if resolution.action == "create":
        assert resolution.value is not None
        user = _create_jit_user(db, resolution.value, claims)
    assert user is not None
    _check_enabled(user)
    who = actor or Actor.of(user, ip)
    if resolution.action in ("bind", "create"):
        user.idp_issuer = issuer
        user.idp_subject = sub
        db.flush()
        changes.touch(db, "user", user.id)
        audit.record(
            db,
            who,
            "user.idp_bound",
            target_type="user",
            target_id=user.id,
            details={
                "username": user.username,
                "issuer": issuer,
                "subject": sub,
                "matched_by": settings.user_claim,
                "created": resolution.action == "create",
            },
        )
    groups = _groups(settings, claims)
    if groups is not None:
        _apply_group_roles(db, who, settings, user, groups)
    return user


@dataclass(frozen=True)
class MatchPreview:
    """What a sign-in with these claims would do, for the admin's "Test sign-in"."""

    ok: bool
    username: str | None
    sentence: str
    code: str | None = None


def preview_match(
    db: Session, settings: IdPSettings, issuer: str, claims: Mapping[str, Any]
) -> MatchPreview:
    """Like :func:`match_user`, without binding, creating or changing anything."""
    try:
        resolution = _resolve(db, settings, issuer, claims)
        if resolution.user is not None:
            _check_enabled(resolution.user)
    except IdentityRefused as exc:
        return MatchPreview(False, None, exc.detail, exc.code)
    user = resolution.user
    if resolution.action == "bound":
        assert user is not None
        return MatchPreview(True, user.username, f"Already linked to {user.username}.")
    if resolution.action == "bind":
        assert user is not None
        return MatchPreview(
            True,
            user.username,
            f"Matches {user.username} by {settings.user_claim}; the first real sign-in links "
            "this identity to that user for good.",
        )
    return MatchPreview(
        True,
        resolution.value,
        f"No user matches; just-in-time creation would create {resolution.value}.",
    )
