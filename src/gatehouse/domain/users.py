"""IT users: creation, changes, passwords, roles, and the last-local-admin rule.

Every write goes through here so that the password policy, the audit log and the change feed can
never be bypassed by a route.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from gatehouse.domain import audit, changes, passwords
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import Conflict, InvalidInput, LastAdminError, NotFound
from gatehouse.domain.idp_state import password_policy
from gatehouse.store.models import Environment, Role, RoleAssignment, User, utcnow
from gatehouse.store.models import Session as SessionRow

ROLE_NAMES = ("Administrator", "Developer", "Viewer")
#: letters, digits and . _ - @ + ' (the ASCII apostrophe: IdP usernames and e-mail local parts
#: like o'brien carry it). Typographic apostrophes (U+2019) stay out: they would pass for
#: "o'brien" while being another account.
_USERNAME_RE = re.compile(r"^[^\W_][\w.@+'-]*$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USERNAME_MAX = 150


def username_key(username: str) -> str:
    """The comparison key: NFKC, casefolded, NFKC again (casefold can denormalise)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def validate_username(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("The username must be a string.", code="invalid_username")
    name = unicodedata.normalize("NFKC", raw)
    if not name or len(name) > USERNAME_MAX:
        raise InvalidInput(
            f"The username must be 1 to {USERNAME_MAX} characters long.", code="invalid_username"
        )
    if not _USERNAME_RE.match(name):
        raise InvalidInput(
            "The username may contain letters, digits and . _ - @ + ' and must start with a "
            "letter or digit.",
            code="invalid_username",
        )
    if not _single_script(name):
        raise InvalidInput(
            "The username mixes letters of different scripts (e.g. one Cyrillic letter among "
            "Latin ones); use one script so that it cannot pass for another user's name.",
            code="invalid_username",
        )
    return name


#: UTS #39 "highly restrictive": one script, or Latin with the scripts written alongside Han.
_SCRIPT_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def _single_script(name: str) -> bool:
    """Whether the letters of ``name`` come from one script (or an allowed CJK mix)."""
    scripts = set()
    for ch in name:
        if ch.isalpha():
            word = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            scripts.add("HAN" if word == "CJK" else word)
    return len(scripts) <= 1 or any(scripts <= mix for mix in _SCRIPT_MIXES)


def email_key(email: str | None) -> str | None:
    return unicodedata.normalize("NFKC", email).casefold() if email else None


def validate_email(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    value = raw.strip()
    if len(value) > 320 or not _EMAIL_RE.match(value):
        raise InvalidInput("The email address is not valid.", code="invalid_email")
    return value


def validate_display_name(raw: str | None) -> str:
    value = (raw or "").strip()
    if len(value) > 200 or any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput(
            "The display name must be at most 200 printable characters.", code="invalid_input"
        )
    return value


@dataclass(frozen=True)
class RoleGrant:
    role: str
    environment: str | None = None  # None: every environment

    def as_dict(self) -> dict[str, str | None]:
        return {"role": self.role, "environment": self.environment}


def list_roles(db: Session) -> list[Role]:
    return list(db.scalars(select(Role).order_by(Role.id)))


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def find_by_username(db: Session, username: str) -> User | None:
    return db.scalar(select(User).where(User.username_key == username_key(username)))


def effective_roles(user: User) -> list[RoleGrant]:
    grants = [
        RoleGrant(a.role.name, a.environment.name if a.environment else None)
        for a in user.assignments
    ]
    if user.local_admin and RoleGrant("Administrator") not in grants:
        grants.insert(0, RoleGrant("Administrator"))
    return sorted(set(grants), key=lambda g: (g.environment or "", g.role))


def is_admin(user: User, environment_id: int | None = None) -> bool:
    """Local admins and global Administrators; on an environment server (``environment_id``
    set), also the Administrators of that one environment — never those of another."""
    return user.local_admin or any(
        a.role.name == "Administrator"
        and (a.environment_id is None or a.environment_id == environment_id)
        for a in user.assignments
    )


def _bump(db: Session, user: User) -> None:
    db.flush()
    changes.touch(db, "user", user.id)


def enabled_local_admins(db: Session) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(User)
            .where(User.local_admin.is_(True), User.status == "active")
        )
        or 0
    )


def _guard_last_admin(db: Session, user: User, what: str) -> None:
    if user.local_admin and user.status == "active" and enabled_local_admins(db) <= 1:
        raise LastAdminError(
            f"{user.username} is the last enabled local admin and cannot be {what}: "
            "create or enable another local admin first, so the organisation is never locked out."
        )


def create_user(
    db: Session,
    actor: Actor,
    *,
    username: str,
    email: str | None = None,
    display_name: str | None = None,
    password: str | None = None,
    local_admin: bool = False,
    roles: Sequence[RoleGrant] = (),
    must_change_password: bool = False,
) -> User:
    name = validate_username(username)
    key = username_key(name)
    email = validate_email(email)
    policy = password_policy(db)
    policy.check_create(local_admin=local_admin, password=password)
    if password is not None:
        passwords.check_strength(password, name)
    existing = db.scalar(select(User.username).where(User.username_key == key))
    if existing is not None:
        # name the stored user: "Alice" is taken because "alice" exists (case is ignored)
        same = "" if existing == name else f" (usernames ignore case and width, so {name} is taken)"
        raise Conflict(f"A user named {existing} already exists{same}.", code="username_taken")
    user = User(
        username=name,
        username_key=key,
        email=email,
        email_key=email_key(email),
        display_name=validate_display_name(display_name) or name,
        local_admin=local_admin,
        password_hash=passwords.hash_password(password) if password is not None else None,
        must_change_password=must_change_password,
        status="active",
    )
    db.add(user)
    db.flush()
    if roles:
        _apply_roles(db, user, roles)
    _bump(db, user)
    audit.record(
        db,
        actor,
        "user.create",
        target_type="user",
        target_id=user.id,
        details={
            "username": user.username,
            "local_admin": local_admin,
            "with_password": password is not None,
            "roles": [g.as_dict() for g in roles],
        },
    )
    return user


def update_user(
    db: Session,
    actor: Actor,
    user: User,
    *,
    email: str | None = None,
    display_name: str | None = None,
    status: Literal["active", "disabled"] | None = None,
    local_admin: bool | None = None,
    fields_set: frozenset[str] = frozenset(),
) -> User:
    changed: dict[str, object] = {}
    if "email" in fields_set and email != user.email:
        user.email = validate_email(email)
        user.email_key = email_key(user.email)
        changed["email"] = user.email
    if "display_name" in fields_set and display_name is not None:
        value = validate_display_name(display_name) or user.username
        if value != user.display_name:
            user.display_name = value
            changed["display_name"] = value
    if "status" in fields_set and status is not None and status != user.status:
        if status == "disabled":
            _guard_last_admin(db, user, "disabled")
        user.status = status
        changed["status"] = status
    if "local_admin" in fields_set and local_admin is not None and local_admin != user.local_admin:
        if not local_admin:
            _guard_last_admin(db, user, "demoted")
        user.local_admin = local_admin
        changed["local_admin"] = local_admin
    if not changed:
        return user
    user.updated_at = utcnow()
    _bump(db, user)
    if changed.get("status") == "disabled":
        end_sessions(db, user_ids=[user.id], reason="user_disabled")
    if changed.get("local_admin") is False and password_policy(db).oidc_active:
        end_sessions(db, user_ids=[user.id], reason="demoted", method="password")
    audit.record(
        db,
        actor,
        "user.update",
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "changed": changed},
    )
    return user


def set_password(
    db: Session, actor: Actor, user: User, password: str, *, must_change: bool = False
) -> None:
    password_policy(db).check_set(local_admin=user.local_admin)
    passwords.check_strength(password, user.username)
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = must_change
    user.updated_at = utcnow()
    changes.touch(db, "user", user.id)  # break-glass admins sign in on environments too
    audit.record(
        db,
        actor,
        "user.password_set",
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "by_self": actor.user_id == user.id},
    )


def delete_user(db: Session, actor: Actor, user: User) -> None:
    _guard_last_admin(db, user, "deleted")
    user_id, username = user.id, user.username
    end_sessions(db, user_ids=[user_id], reason="user_deleted")
    db.delete(user)
    db.flush()
    changes.touch(db, "user", user_id)
    audit.record(
        db,
        actor,
        "user.delete",
        target_type="user",
        target_id=user_id,
        details={"username": username},
    )


def _apply_roles(db: Session, user: User, grants: Sequence[RoleGrant]) -> None:
    roles = {r.name.casefold(): r for r in db.scalars(select(Role))}
    envs = {e.name.casefold(): e for e in db.scalars(select(Environment))}
    wanted: list[tuple[Role, Environment | None]] = []
    for grant in grants:
        role = roles.get(grant.role.casefold())
        if role is None:
            raise InvalidInput(
                f"Unknown role {grant.role!r}; choose one of {', '.join(ROLE_NAMES)}.",
                code="unknown_role",
            )
        env = None
        if grant.environment is not None:
            env = envs.get(grant.environment.casefold())
            if env is None:
                raise InvalidInput(
                    f"Unknown environment {grant.environment!r}.", code="unknown_environment"
                )
        if (role, env) not in wanted:
            wanted.append((role, env))
    user.assignments.clear()
    db.flush()
    for role, env in wanted:
        user.assignments.append(RoleAssignment.grant(role, env))
    db.flush()


def set_roles(db: Session, actor: Actor, user: User, grants: Sequence[RoleGrant]) -> None:
    before = [g.as_dict() for g in effective_roles(user)]
    _apply_roles(db, user, grants)
    user.updated_at = utcnow()
    _bump(db, user)
    audit.record(
        db,
        actor,
        "user.roles",
        target_type="user",
        target_id=user.id,
        details={
            "username": user.username,
            "before": before,
            "after": [g.as_dict() for g in grants],
        },
    )


def end_sessions(
    db: Session,
    *,
    user_ids: Sequence[int] | None = None,
    reason: str,
    method: str | None = None,
    exclude_local_admins: bool = False,
) -> int:
    """Revoke console sessions (all of some users, or all password sessions …)."""
    stmt = select(SessionRow).where(SessionRow.revoked_at.is_(None))
    if user_ids is not None:
        stmt = stmt.where(SessionRow.user_id.in_(list(user_ids)))
    if method is not None:
        stmt = stmt.where(SessionRow.method == method)
    count = 0
    now = utcnow()
    for row in db.scalars(stmt):
        if exclude_local_admins:
            owner = db.get(User, row.user_id)
            if owner is not None and owner.local_admin:
                continue
        row.revoked_at = now
        row.revoked_reason = reason
        count += 1
    return count


SortKey = Literal[
    "username",
    "-username",
    "created_at",
    "-created_at",
    "last_sign_in_at",
    "-last_sign_in_at",
    "email",
    "-email",
]


#: Counting stops here: an exact COUNT grows linearly with the table, a bounded one does not.
TOTAL_BOUND = 10_000

_SORT_COLUMNS = {
    "username": User.username_key,
    "created_at": User.created_at,
    "last_sign_in_at": User.last_sign_in_at,
    "email": User.email_key,
}


@dataclass(frozen=True)
class UserSearch:
    """One page of users. ``exact`` is False when more than ``total`` (= ``TOTAL_BOUND``) match:
    counting stopped there, so ``total`` is a lower bound."""

    items: list[User]
    total: int
    exact: bool


def _next_string(term: str) -> str | None:
    """The smallest string greater than every string that starts with ``term`` (code-point
    order), or None when the last character cannot be incremented."""
    last = ord(term[-1])
    if last >= 0x10FFFF or 0xD7FF <= last < 0xE000:
        return None
    return term[:-1] + chr(last + 1)


def _starts_with(column: Any, term: str, dialect: str) -> Any:
    """``column`` starts with ``term``, written so that an index serves it.

    PostgreSQL turns ``LIKE 'x%'`` into an index range with the ``*_pattern_ops`` indexes of
    migration 0005 whatever the database collation. SQLite only does that for NOCASE columns,
    so there the prefix becomes the equivalent range (BINARY order is code-point order).
    """
    if dialect == "sqlite":
        upper = _next_string(term)
        if upper is not None:
            return and_(column >= term, column < upper)
    like = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return column.like(like, escape="\\")


def search_users(
    db: Session,
    *,
    q: str | None = None,
    status: str | None = None,
    sort: str = "username",
    page: int = 1,
    per_page: int = 50,
) -> UserSearch:
    """A page of users; ``q`` matches the start of username, email or display name.

    Every filter and order has an index (migration 0005) and the total is counted only up to
    ``TOTAL_BOUND``, so a page costs about the same at 1,000 users as at 100,000.
    """
    column = _SORT_COLUMNS.get(sort.lstrip("-"))
    if column is None:
        raise InvalidInput(
            "sort must be one of username, email, created_at, last_sign_in_at "
            "(prefix with - for descending).",
        )
    dialect = db.get_bind().dialect.name
    conditions = []
    term = username_key(q.strip()) if q else ""
    if term:
        conditions.append(
            or_(
                _starts_with(User.username_key, term, dialect),
                _starts_with(User.email_key, term, dialect),
                _starts_with(func.lower(User.display_name), term, dialect),
            )
        )
    if status:
        conditions.append(User.status == status)
    descending = sort.startswith("-")
    offset = (page - 1) * per_page
    if term and dialect == "postgresql":
        found = _search_postgres(db, conditions, column, descending, offset, per_page)
        if found is not None:
            return found
    counted = db.scalar(
        select(func.count()).select_from(
            select(User.id).where(*conditions).limit(TOTAL_BOUND + 1).subquery()
        )
    )
    total = int(counted or 0)
    order: list[Any] = [column.desc() if descending else column.asc()]
    if column is not User.username_key:  # unique: a tie-breaker would only defeat its index
        order.append(User.id.desc() if descending else User.id.asc())
    stmt = select(User).where(*conditions).order_by(*order).offset(offset).limit(per_page)
    items = list(db.scalars(stmt))
    if total > TOTAL_BOUND and 0 < len(items) < per_page:
        return UserSearch(items=items, total=offset + len(items), exact=True)  # the last page
    return UserSearch(items=items, total=min(total, TOTAL_BOUND), exact=total <= TOTAL_BOUND)


def _search_postgres(
    db: Session,
    conditions: list[Any],
    column: Any,
    descending: bool,
    offset: int,
    limit: int,
) -> UserSearch | None:
    """A search page and its exact total in one scan, or None when more than ``TOTAL_BOUND``
    users match (or the page is past the end) and the general path must answer.

    Left alone, PostgreSQL walks the sort index and filters, hoping matches are spread evenly;
    but a prefix's matches cluster (``maria.*`` sits after every ``a``..``mari`` user), so that
    walk reads most of the table. ``OFFSET 0`` fences the match set: it comes from the prefix
    indexes, at most ``TOTAL_BOUND + 1`` rows, counted and sorted in the same query. (SQLite
    plans the plain query well; there the fence only slows it down.)
    """
    fenced = (
        select(User.id.label("id"), column.label("key"))
        .where(*conditions)
        .limit(TOTAL_BOUND + 1)
        .offset(0)
        .subquery()
    )
    key_order = fenced.c.key.desc() if descending else fenced.c.key.asc()
    id_order = fenced.c.id.desc() if descending else fenced.c.id.asc()
    page = db.execute(
        select(fenced.c.id, func.count().over())
        .order_by(key_order, id_order)
        .offset(offset)
        .limit(limit)
    ).all()
    if not page or page[0][1] > TOTAL_BOUND:
        return None
    ids = [row[0] for row in page]
    rows = {u.id: u for u in db.scalars(select(User).where(User.id.in_(ids)))}
    return UserSearch(items=[rows[i] for i in ids if i in rows], total=page[0][1], exact=True)


def mark_signed_in(user: User, when: datetime | None = None) -> None:
    user.last_sign_in_at = when or utcnow()
