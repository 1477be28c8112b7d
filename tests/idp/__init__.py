"""A real OpenID Provider (node `oidc-provider`) for Gatehouse's integration tests.

See :mod:`idp.fixture` for the Python API and :mod:`idp.plugin` for the pytest fixtures.
"""
