"""The password policy — the heart of the product.

While OIDC is NOT active, users may have passwords and sign in with them. While it IS active:

(a) creating a user with a password is refused unless the user is a local admin;
(b) adding or changing the password of a user who is not a local admin is refused;
(c) password sign-in of users who are not local admins is refused, even with an old password;
(d) new users are created without a password by default;
(e) password hashes of non-admins are kept, so deactivating OIDC restores the previous state.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatehouse.domain.errors import PasswordNotAllowed


@dataclass(frozen=True)
class PasswordPolicy:
    oidc_active: bool
    idp_name: str = "your identity provider"

    def may_have_password(self, *, local_admin: bool) -> bool:
        return local_admin or not self.oidc_active

    def reason(self, *, local_admin: bool) -> str | None:
        """Why a password is not allowed for such a user, or None when it is."""
        if self.may_have_password(local_admin=local_admin):
            return None
        return (
            f"Passwords are managed by {self.idp_name}: while single sign-on is active only "
            "local admins have a Gatehouse password."
        )

    def check_create(self, *, local_admin: bool, password: str | None) -> None:
        """Rule (a)."""
        if password is not None and not self.may_have_password(local_admin=local_admin):
            raise PasswordNotAllowed(
                "Users other than local admins are created without a password while single "
                f"sign-on is active; they sign in with {self.idp_name}."
            )

    def check_set(self, *, local_admin: bool) -> None:
        """Rule (b)."""
        if not self.may_have_password(local_admin=local_admin):
            raise PasswordNotAllowed(
                "Only local admins can have a password while single sign-on is active; "
                f"this user signs in with {self.idp_name}."
            )

    def check_sign_in(self, *, local_admin: bool) -> None:
        """Rule (c)."""
        if not self.may_have_password(local_admin=local_admin):
            raise PasswordNotAllowed(
                f'Password sign-in is turned off for your account. Use "Sign in with '
                f'{self.idp_name}" instead.',
            )
