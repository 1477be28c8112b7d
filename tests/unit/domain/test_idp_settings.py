"""The IdP settings model: every rule's sentence, code and field, and how input is normalised."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.domain.errors import InvalidInput
from gatehouse.domain.idp_settings import GroupRoleRule, IdPSettings

BASE = {"display_name": "Acme IdP", "issuer": "https://idp.example.com", "client_id": "web"}
RULE = "Each group rule is an object {group, role, environment}."
SCOPE = "Each scope is one word of printable characters without spaces or quotes."


def refused(allow_insecure_http: bool = False, **changes: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        IdPSettings.parse({**BASE, **changes}, allow_insecure_http=allow_insecure_http)
    return info.value


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        ({"display_name": "  "}, "display_name", "display_name is required."),
        ({"display_name": None}, "display_name", "display_name is required."),
        ({"display_name": 5}, "display_name", "display_name must be a string."),
        (
            {"display_name": "x" * 101},
            "display_name",
            "display_name must be at most 100 printable characters.",
        ),
        (
            {"client_id": "we\x00b"},
            "client_id",
            "client_id must be at most 255 printable characters.",
        ),
        (
            {"token_endpoint_auth_method": "tls_client_auth"},
            "token_endpoint_auth_method",
            "token_endpoint_auth_method must be client_secret_basic, client_secret_post or "
            "private_key_jwt.",
        ),
        ({"user_claim": "sub"}, "user_claim", "user_claim must be preferred_username or email."),
        ({"groups_claim": "a b"}, "groups_claim", "groups_claim must be a claim name."),
        ({"scopes": [1]}, "scopes", "scopes must be a list of strings."),
        ({"scopes": ['say"hi']}, "scopes", SCOPE),
        ({"scopes": [f"s{i}" for i in range(50)]}, "scopes", SCOPE),  # 51 with openid
        (
            {"group_role_rules": "devs"},
            "group_role_rules",
            "group_role_rules must be a list of {group, role, environment}.",
        ),
        ({"group_role_rules": [1]}, "group_role_rules", RULE),
        ({"group_role_rules": [{"role": "Viewer"}]}, "group_role_rules", "group is required."),
        (
            {"group_role_rules": [{"group": "devs", "role": "Boss"}]},
            "group_role_rules",
            "Unknown role 'Boss' in a group rule; choose one of Administrator, Developer, Viewer.",
        ),
        (
            {"clock_skew_seconds": 601},
            "clock_skew_seconds",
            "clock_skew_seconds must be a whole number from 0 to 600.",
        ),
        (
            {"clock_skew_seconds": True},
            "clock_skew_seconds",
            "clock_skew_seconds must be a whole number from 0 to 600.",
        ),
        (
            {"refresh_grace_seconds": "-1"},
            "refresh_grace_seconds",
            "refresh_grace_seconds must be a whole number from 0 to 86400.",
        ),
        (
            {"jit_provisioning": "true"},
            "jit_provisioning",
            "jit_provisioning must be true or false.",
        ),
        (
            {"ca_bundle_pem": "not a certificate"},
            "ca_bundle_pem",
            "The CA bundle is not a valid PEM certificate list.",
        ),
        (
            {"ca_bundle_pem": "-----BEGIN CERTIFICATE-----é"},
            "ca_bundle_pem",
            "The CA bundle is not a valid PEM certificate list.",
        ),
    ],
)
def test_each_rule_refuses_with_its_sentence_and_field(
    changes: dict[str, Any], field: str, detail: str
) -> None:
    error = refused(**changes)
    assert (error.code, error.extra["field"], error.detail) == ("invalid_idp_config", field, detail)
    assert error.status == 400


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(InvalidInput) as info:
        IdPSettings.parse(
            {"display_name": "A", "issuer": BASE["issuer"]}, allow_insecure_http=False
        )
    assert (
        info.value.detail == "client_id is required." and info.value.extra["field"] == "client_id"
    )


@pytest.mark.parametrize(
    ("issuer", "allow", "code"),
    [
        ("http://idp.example.com", True, "insecure_issuer"),
        ("http://127.0.0.1:9000", False, "insecure_issuer"),
        ("https://idp.example.com?x=1", False, "invalid_issuer"),
        ("https://user:pw@idp.example.com", False, "invalid_issuer"),
    ],
)
def test_issuer_rules_keep_their_own_codes(issuer: str, allow: bool, code: str) -> None:
    error = refused(allow, issuer=issuer)
    assert error.code == code and error.extra["field"] == "issuer"


def test_http_loopback_issuer_needs_the_insecure_policy_and_no_context_fails_closed() -> None:
    loopback = {**BASE, "issuer": "http://127.0.0.1:9000"}
    assert IdPSettings.parse(loopback, allow_insecure_http=True).issuer == loopback["issuer"]
    with pytest.raises(ValueError, match="must use https"):
        IdPSettings.model_validate(loopback)  # no context: the strict policy


def test_input_is_normalised_as_a_form_or_api_sends_it() -> None:
    settings = IdPSettings.parse(
        {
            **BASE,
            "display_name": "  Acme  ",
            "token_endpoint_auth_method": "",
            "native_client_id": "  ",
            "scopes": "profile  email profile",
            "groups_claim": "",
            "group_role_rules": [
                {"group": " devs ", "role": "developer", "environment": ""},
                {"group": "devs", "role": "Developer"},
            ],
            "clock_skew_seconds": " 30 ",
            "refresh_grace_seconds": None,
            "ca_bundle_pem": "",
            "unknown_field": "ignored",
        },
        allow_insecure_http=False,
    )
    assert settings.display_name == "Acme"
    assert settings.token_endpoint_auth_method == "client_secret_basic"
    assert settings.native_client_id is None and settings.groups_claim is None
    assert settings.scopes == ("openid", "profile", "email")
    assert settings.group_role_rules == (GroupRoleRule(group="devs", role="Developer"),)
    assert (settings.clock_skew_seconds, settings.refresh_grace_seconds) == (30, 300)
    assert settings.ca_bundle_pem is None


def test_stored_form_round_trips_and_is_immutable() -> None:
    settings = IdPSettings.parse(
        {**BASE, "group_role_rules": [{"group": "ops", "role": "Administrator"}]},
        allow_insecure_http=False,
    )
    stored = settings.as_dict()
    assert stored["scopes"] == ["openid", "profile", "email"]
    assert stored["group_role_rules"] == [
        {"group": "ops", "role": "Administrator", "environment": None}
    ]
    assert IdPSettings.parse(stored, allow_insecure_http=False) == settings
    with pytest.raises(ValueError, match="frozen"):
        settings.issuer = "https://other.example.com"  # type: ignore[misc]
