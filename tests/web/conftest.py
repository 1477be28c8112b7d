"""Fixtures shared by the tools' token tests: the session IdP configured and active, and alice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gatehouse.runtime import Runtime
from idp.fixture import OpenIDProvider
from idp_helpers import configure_idp


@pytest.fixture
def active_idp(runtime: Runtime, idp: OpenIDProvider) -> OpenIDProvider:
    """The session's test IdP, configured (web and native client) and active."""
    configure_idp(runtime, idp)
    return idp


@pytest.fixture
def alice(make_user: Callable[..., int]) -> int:
    """alice, who exists at the test IdP too; returns her id."""
    return make_user("alice", email="alice@example.com")
