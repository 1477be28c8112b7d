"""pytest plugin: fixtures that run the real test OpenID Provider.

Register with ``pytest_plugins = ["idp.plugin"]`` in ``tests/conftest.py`` (``tests`` on
``pythonpath``) or ``-p idp.plugin``.

Fixtures:

* ``idp_web_redirect_uris`` (session) -- override to register gatehouse-web's redirect URIs;
  default ``["http://127.0.0.1:8000/auth/oidc/callback"]``.
* ``idp`` (session) -- one started :class:`~idp.fixture.OpenIDProvider` with the default
  users/clients.
* ``idp_factory`` (function) -- ``idp_factory(**OpenIDProvider kwargs) -> started provider``;
  every provider it made is stopped at teardown.

For an IdP of a module's own (other users, clients or token lifetimes), a module-scoped fixture
does ``with running_idp(**OpenIDProvider kwargs) as provider: yield provider``; a fixture that
starts the IdP itself as part of a larger set-up calls ``require_idp()`` first.

If ``node`` or ``tests/idp/node_modules`` is missing the fixtures FAIL (not skip), telling you to
run ``npm ci --prefix tests/idp``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from idp.fixture import IdPNotInstalledError, OpenIDProvider, check_installed

IdPFactory = Callable[..., OpenIDProvider]


def require_idp() -> None:
    """Fail the test (never skip it) when node or the IdP's node_modules are missing."""
    try:
        check_installed()
    except IdPNotInstalledError as exc:
        pytest.fail(f"test IdP unavailable: {exc}", pytrace=False)


@contextmanager
def running_idp(**kwargs: Any) -> Iterator[OpenIDProvider]:
    """A started :class:`OpenIDProvider` (``kwargs`` as its constructor takes them), stopped on
    exit."""
    require_idp()
    provider = OpenIDProvider(**kwargs)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def idp_web_redirect_uris() -> list[str]:
    return ["http://127.0.0.1:8000/auth/oidc/callback"]


@pytest.fixture(scope="session")
def idp(idp_web_redirect_uris: list[str]) -> Iterator[OpenIDProvider]:
    with running_idp(web_redirect_uris=idp_web_redirect_uris) as provider:
        yield provider


@pytest.fixture
def idp_factory() -> Iterator[IdPFactory]:
    require_idp()
    made: list[OpenIDProvider] = []

    def factory(**kwargs: Any) -> OpenIDProvider:
        provider = OpenIDProvider(**kwargs)
        made.append(provider)
        provider.start()
        return provider

    try:
        yield factory
    finally:
        for provider in reversed(made):
            provider.stop()
