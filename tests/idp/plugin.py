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

If ``node`` or ``tests/idp/node_modules`` is missing the fixtures FAIL (not skip), telling you to
run ``npm ci --prefix tests/idp``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from idp.fixture import IdPNotInstalledError, OpenIDProvider, check_installed

IdPFactory = Callable[..., OpenIDProvider]


def _require_idp() -> None:
    try:
        check_installed()
    except IdPNotInstalledError as exc:
        pytest.fail(f"test IdP unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def idp_web_redirect_uris() -> list[str]:
    return ["http://127.0.0.1:8000/auth/oidc/callback"]


@pytest.fixture(scope="session")
def idp(idp_web_redirect_uris: list[str]) -> Iterator[OpenIDProvider]:
    _require_idp()
    provider = OpenIDProvider(web_redirect_uris=idp_web_redirect_uris)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def idp_factory() -> Iterator[IdPFactory]:
    _require_idp()
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
