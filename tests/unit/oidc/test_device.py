"""RFC 8628 device authorization grant, client side (fake clock and sleep)."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.oidc import (
    ClientCredentials,
    DeviceFlowError,
    TokenEndpointError,
    poll_device_token,
    start_device_authorization,
)
from gatehouse.oidc.device import DeviceAuthorization
from unit.oidc.oidc_testkit import FakeClock, FakeIdP, form

CLIENT = ClientCredentials("gatehouse-cli", auth_method="none")


def device(expires_in: int = 600, interval: int = 5) -> DeviceAuthorization:
    return DeviceAuthorization(
        "dc-1", "ABCD-EFGH", "https://idp/device", None, expires_in, interval
    )


def scripted(*answers: httpx.Response):
    queue = list(answers)
    return lambda request: queue.pop(0) if len(queue) > 1 else queue[0]


def err(code: str) -> httpx.Response:
    return httpx.Response(400, json={"error": code})


OK = httpx.Response(200, json={"access_token": "at", "token_type": "Bearer", "id_token": "x.y.z"})


def test_device_start_parses_response(idp: FakeIdP, metadata) -> None:
    idp.routes["/device"] = lambda r: httpx.Response(200, json={
        "device_code": "dc", "user_code": "WDJB-MJHT", "verification_uri": "https://idp/activate",
        "verification_uri_complete": "https://idp/activate?c=WDJB-MJHT", "expires_in": 1800,
    })  # fmt: skip
    auth = start_device_authorization(idp.client(), metadata, "gatehouse-cli", ["profile"])
    assert auth.user_code == "WDJB-MJHT" and auth.interval == 5 and auth.expires_in == 1800
    assert form(idp.requests[-1]) == {"scope": "openid profile", "client_id": "gatehouse-cli"}


def test_device_polling_pending_then_success(idp: FakeIdP, metadata) -> None:
    clock = FakeClock()
    idp.routes["/token"] = scripted(err("authorization_pending"), err("authorization_pending"), OK)
    tokens = poll_device_token(idp.client(), metadata, CLIENT, device(), sleep=clock.sleep,
                               clock=clock)  # fmt: skip
    assert tokens.access_token == "at"
    assert clock.now == 1015
    assert form(idp.requests[-1])["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"


def test_device_polling_slow_down_increments_interval_by_5(idp: FakeIdP, metadata) -> None:
    clock = FakeClock(0)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    idp.routes["/token"] = scripted(
        err("slow_down"), err("authorization_pending"), err("slow_down"),
        err("authorization_pending"), OK,
    )  # fmt: skip
    poll_device_token(idp.client(), metadata, CLIENT, device(), sleep=sleep, clock=clock)
    assert sleeps == [5, 10, 10, 15, 15]


def test_device_polling_access_denied(idp: FakeIdP, metadata) -> None:
    clock = FakeClock()
    idp.routes["/token"] = scripted(err("authorization_pending"), err("access_denied"))
    with pytest.raises(DeviceFlowError) as info:
        poll_device_token(idp.client(), metadata, CLIENT, device(), sleep=clock.sleep, clock=clock)
    assert info.value.error == "access_denied"


def test_device_polling_expired_token(idp: FakeIdP, metadata) -> None:
    clock = FakeClock()
    idp.routes["/token"] = scripted(err("expired_token"))
    with pytest.raises(DeviceFlowError) as info:
        poll_device_token(idp.client(), metadata, CLIENT, device(), sleep=clock.sleep, clock=clock)
    assert info.value.error == "expired_token"


def test_device_polling_deadline(idp: FakeIdP, metadata) -> None:
    clock = FakeClock(0)
    ticks: list[float] = []
    idp.routes["/token"] = scripted(err("authorization_pending"))
    with pytest.raises(DeviceFlowError) as info:
        poll_device_token(idp.client(), metadata, CLIENT, device(expires_in=30),
                          sleep=clock.sleep, clock=clock, on_tick=ticks.append)  # fmt: skip
    assert info.value.error == "expired_token"
    assert idp.count("/token") == 6 and clock.now == 30
    assert ticks == [25, 20, 15, 10, 5, 0]


def test_device_polling_other_error_raised(idp: FakeIdP, metadata) -> None:
    clock = FakeClock()
    idp.routes["/token"] = scripted(err("invalid_client"))
    with pytest.raises(TokenEndpointError) as info:
        poll_device_token(idp.client(), metadata, CLIENT, device(), sleep=clock.sleep, clock=clock)
    assert info.value.oauth_error == "invalid_client"
