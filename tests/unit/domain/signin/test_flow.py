"""The prompt a sign-in start asks the IdP for."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.domain.signin.flow import prompt_for
from gatehouse.oidc import ProviderMetadata

ISSUER = "https://idp.example.com"


def metadata(**extra: Any) -> ProviderMetadata:
    return ProviderMetadata.from_dict(
        {
            "issuer": ISSUER,
            "authorization_endpoint": ISSUER + "/auth",
            "token_endpoint": ISSUER + "/token",
            "jwks_uri": ISSUER + "/jwks",
            **extra,
        },
        allow_insecure_http=False,
    )


def test_another_account_is_select_account_where_the_idp_advertises_it() -> None:
    supported = metadata(prompt_values_supported=["none", "login", "select_account"])
    assert prompt_for(supported, "select_account") == "select_account"


@pytest.mark.parametrize("advertised", [None, ["none", "login", "consent"]])
def test_another_account_falls_back_to_login_elsewhere(advertised: list[str] | None) -> None:
    doc = {} if advertised is None else {"prompt_values_supported": advertised}
    assert prompt_for(metadata(**doc), "select_account") == "login"


@pytest.mark.parametrize(("wanted", "sent"), [("none", "none"), ("login", "login"), (None, None)])
def test_other_prompts_pass_through_and_unknown_ones_are_dropped(
    wanted: str | None, sent: str | None
) -> None:
    assert prompt_for(metadata(), wanted) == sent
    assert prompt_for(metadata(), "consent") is None
