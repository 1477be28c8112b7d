"""The console's sign-in through the IdP (the OIDC web flow), by feature:

* :mod:`.flow` — ``start_flow``: the authorization request and its one-time flow record
  (``consume_flow`` takes it back at the callback);
* :mod:`.callback` — ``finish_flow``: the IdP's answer → verified ID token → IT user → session
  (or the admin's test sign-in report);
* :mod:`.refresh` — ``SessionKeeper``: a session's IdP tokens kept fresh while it is used;
* :mod:`.logout` — ``logout_url`` (RP-initiated) and ``backchannel_logout``;
* :mod:`.common` — ``SignInServices`` (what every step uses, built by the runtime as
  ``rt.signin``), ``SignInError``, the verified claims at rest.

Framework-free: the web layer (``web/oidc_routes.py``) passes query parameters and cookie values
in and turns results and :class:`SignInError` into responses. Protocol checks are the ones of
:mod:`gatehouse.oidc`; this package decides what they mean for a Gatehouse session.
"""

from gatehouse.domain.signin.callback import Callback, Restart, SignedIn, TestSignIn, finish_flow
from gatehouse.domain.signin.common import RefusedIdentity, SignInError, SignInServices
from gatehouse.domain.signin.flow import CALLBACK_PATH, FLOW_LIFETIME, FlowStart, start_flow
from gatehouse.domain.signin.logout import backchannel_logout, logout_url, refused_logout_url
from gatehouse.domain.signin.refresh import REFRESH_MARGIN, SessionKeeper, refresh_due

__all__ = [
    "CALLBACK_PATH",
    "FLOW_LIFETIME",
    "REFRESH_MARGIN",
    "Callback",
    "FlowStart",
    "RefusedIdentity",
    "Restart",
    "SessionKeeper",
    "SignInError",
    "SignInServices",
    "SignedIn",
    "TestSignIn",
    "backchannel_logout",
    "finish_flow",
    "logout_url",
    "refresh_due",
    "refused_logout_url",
    "start_flow",
]
