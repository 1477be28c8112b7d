"""identity.match_user: the (iss, sub) binding, first-sign-in matching, refusals, group roles."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.domain import users
from gatehouse.domain.audit import Actor
from gatehouse.domain.identity import IdentityRefused, match_user, preview_match
from gatehouse.domain.idp import GroupRoleRule, IdPSettings
from gatehouse.runtime import Runtime

ISS = "https://idp.example.com"
SETTINGS = IdPSettings(display_name="IdP", issuer=ISS, client_id="web")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


def _match(runtime: Runtime, claims: dict[str, Any], settings: IdPSettings = SETTINGS) -> str:
    with runtime.db.session() as db:
        return match_user(db, settings, ISS, claims).username


def _refused(runtime: Runtime, claims: dict[str, Any], settings: IdPSettings = SETTINGS) -> str:
    with pytest.raises(IdentityRefused) as info:
        _match(runtime, claims, settings)
    return info.value.code


def test_first_sign_in_matches_case_insensitively_and_binds(
    runtime: Runtime, make_user: Any
) -> None:
    make_user("Alice")
    assert _match(runtime, {"sub": "s1", "preferred_username": "ALICE"}) == "Alice"
    # the binding wins over a later change of the claim
    assert _match(runtime, {"sub": "s1", "preferred_username": "someone-else"}) == "Alice"


def test_claim_changed_by_nfkc_is_refused(runtime: Runtime, make_user: Any) -> None:
    make_user("alice")
    full_width_alice = "\uff41\uff4c\uff49\uff43\uff45"
    claims = {"sub": "s2", "preferred_username": full_width_alice}
    assert _refused(runtime, claims) == "claim_not_normalized"


def test_bound_user_is_never_rebound_to_another_subject(runtime: Runtime, make_user: Any) -> None:
    make_user("alice")
    _match(runtime, {"sub": "s1", "preferred_username": "alice"})
    assert _refused(runtime, {"sub": "s2", "preferred_username": "alice"}) == "already_bound"


def test_unknown_user_refused_unless_jit(runtime: Runtime) -> None:
    assert _refused(runtime, {"sub": "s9", "preferred_username": "zed"}) == "unknown_user"
    jit = IdPSettings(display_name="IdP", issuer=ISS, client_id="web", jit_provisioning=True)
    assert _match(runtime, {"sub": "s9", "preferred_username": "zed"}, jit) == "zed"


def test_disabled_user_refused(runtime: Runtime, make_user: Any) -> None:
    user_id = make_user("dora")
    with runtime.db.session() as db:
        users.update_user(
            db,
            Actor.system("t"),
            users.get_user(db, user_id),
            status="disabled",
            fields_set=frozenset({"status"}),
        )
    assert _refused(runtime, {"sub": "s3", "preferred_username": "dora"}) == "account_disabled"


def test_email_claim_requires_email_verified(runtime: Runtime, make_user: Any) -> None:
    by_email = IdPSettings(display_name="IdP", issuer=ISS, client_id="web", user_claim="email")
    make_user("erin", email="Erin@Example.com")
    claims = {"sub": "s4", "email": "erin@example.com"}
    assert _refused(runtime, {**claims, "email_verified": False}, by_email) == "email_not_verified"
    assert _refused(runtime, claims, by_email) == "email_not_verified"
    assert _match(runtime, {**claims, "email_verified": True}, by_email) == "erin"


def test_missing_matching_claim_refused(runtime: Runtime, make_user: Any) -> None:
    assert _refused(runtime, {"sub": "s5"}) == "missing_claim"


def test_group_rules_grant_and_withdraw_group_roles_only(runtime: Runtime, make_user: Any) -> None:
    settings = IdPSettings(
        display_name="IdP",
        issuer=ISS,
        client_id="web",
        groups_claim="groups",
        group_role_rules=(
            GroupRoleRule(group="devs", role="Developer"),
            GroupRoleRule(group="ops", role="Administrator"),
        ),
    )
    make_user("gus", roles=[users.RoleGrant("Viewer")])
    with runtime.db.session() as db:
        user = match_user(
            db, settings, ISS, {"sub": "g", "preferred_username": "gus", "groups": ["devs"]}
        )
        assert {(g.role, g.environment) for g in users.effective_roles(user)} == {
            ("Developer", None),
            ("Viewer", None),
        }
    with runtime.db.session() as db:
        user = match_user(db, settings, ISS, {"sub": "g", "groups": []})
        assert {g.role for g in users.effective_roles(user)} == {"Viewer"}


def test_preview_changes_nothing(runtime: Runtime, make_user: Any) -> None:
    make_user("hal")
    with runtime.db.session() as db:
        preview = preview_match(db, SETTINGS, ISS, {"sub": "h", "preferred_username": "hal"})
        assert preview.ok and preview.username == "hal"
        assert users.find_by_username(db, "hal").idp_subject is None  # type: ignore[union-attr]
        unknown = preview_match(db, SETTINGS, ISS, {"sub": "x", "preferred_username": "nobody"})
        assert not unknown.ok and unknown.code == "unknown_user"
