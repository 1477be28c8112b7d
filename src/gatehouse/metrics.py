"""Prometheus metrics: a counter on every failure branch, named by step and outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

PASSWORD_LOGIN = Counter(
    "gatehouse_password_login_total",
    "Password sign-ins by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
OIDC_CALLBACK = Counter(
    "gatehouse_oidc_callback_total",
    "OIDC web-flow callbacks by outcome (ok, bad_state, bad_nonce, idp_error, ...).",
    ["outcome"],
    registry=REGISTRY,
)
OIDC_REFRESH = Counter(
    "gatehouse_oidc_refresh_total",
    "IdP token refreshes for console sessions by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
TOKEN_EXCHANGE = Counter(
    "gatehouse_token_exchange_total",
    "ID token → Gatehouse access token exchanges by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
BACKCHANNEL_LOGOUT = Counter(
    "gatehouse_backchannel_logout_total",
    "Back-channel logout requests by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
IDP_UNAVAILABLE = Counter(
    "gatehouse_idp_unavailable_total",
    "Calls to the IdP that failed because it was unreachable or erroring.",
    ["step"],
    registry=REGISTRY,
)
API_AUTH = Counter(
    "gatehouse_api_auth_total",
    "API authentication outcomes by method.",
    ["method", "outcome"],
    registry=REGISTRY,
)
HOUSEKEEPING_DELETED = Counter(
    "gatehouse_housekeeping_deleted_total",
    "Expired rows deleted by housekeeping, by table.",
    ["table"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "gatehouse_http_errors_total",
    "Error responses by code.",
    ["status", "error"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "gatehouse_request_seconds",
    "Request latency by kind: api (/api/), auth (sign-in, forward auth), console.",
    ["kind"],
    registry=REGISTRY,
)
IDP_REQUEST_SECONDS = Histogram(
    "gatehouse_idp_request_seconds",
    "Time spent waiting on the IdP per outbound request (discovery, JWKS, token, userinfo).",
    registry=REGISTRY,
)
