"""The password policy table, rule by rule, as pure logic."""

from __future__ import annotations

import pytest

from gatehouse.domain.errors import PasswordNotAllowed
from gatehouse.domain.policy import PasswordPolicy

OFF = PasswordPolicy(oidc_active=False, idp_name="Acme SSO")
ON = PasswordPolicy(oidc_active=True, idp_name="Acme SSO")


@pytest.mark.parametrize("local_admin", [True, False])
def test_everything_allowed_while_oidc_is_off(local_admin: bool) -> None:
    OFF.check_create(local_admin=local_admin, password="long-enough-password")
    OFF.check_set(local_admin=local_admin)
    OFF.check_sign_in(local_admin=local_admin)
    assert OFF.reason(local_admin=local_admin) is None


def test_rule_a_create_with_password_refused_for_non_admin_while_active() -> None:
    with pytest.raises(PasswordNotAllowed) as exc:
        ON.check_create(local_admin=False, password="long-enough-password")
    assert exc.value.code == "password_not_allowed"
    assert "Acme SSO" in exc.value.detail


def test_rule_a_create_with_password_allowed_for_local_admin_while_active() -> None:
    ON.check_create(local_admin=True, password="long-enough-password")


def test_rule_b_set_password_refused_for_non_admin_while_active() -> None:
    with pytest.raises(PasswordNotAllowed):
        ON.check_set(local_admin=False)
    ON.check_set(local_admin=True)


def test_rule_c_sign_in_refused_for_non_admin_and_points_to_idp() -> None:
    with pytest.raises(PasswordNotAllowed) as exc:
        ON.check_sign_in(local_admin=False)
    assert "Sign in with Acme SSO" in exc.value.detail
    ON.check_sign_in(local_admin=True)


def test_rule_d_create_without_password_always_allowed() -> None:
    ON.check_create(local_admin=False, password=None)
    OFF.check_create(local_admin=False, password=None)
