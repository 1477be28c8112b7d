"""Fixtures shared by the tools' token tests: the session IdP configured and active, and alice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gatehouse.runtime import Runtime
from idp.fixture import OpenIDProvider
from idp_helpers import save_idp_config


@pytest.fixture
def active_idp(runtime: Runtime, idp: OpenIDProvider) -> OpenIDProvider:
    """The session's test IdP, configured (web and native client) and active, with 30 s of
    clock skew: the expiry tests step just past it."""
    save_idp_config(runtime, idp, clock_skew_seconds=30)
    return idp


@pytest.fixture
def alice(make_user: Callable[..., int]) -> int:
    """alice, who exists at the test IdP too; returns her id."""
    return make_user("alice", email="alice@example.com")
