"""Console: the IdP settings page — configuration form, Test, Test sign-in, activation checklist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from gatehouse.domain import activation, idp_checks
from gatehouse.domain.audit import Actor
from gatehouse.domain.errors import DomainError
from gatehouse.domain.idp import load_config, save_config
from gatehouse.domain.idp_settings import IdPOptionsBase
from gatehouse.domain.idp_state import get_state
from gatehouse.web.console.forms import ConsoleAdmin, Form, field
from gatehouse.web.deps import RuntimeDep, actor_of
from gatehouse.web.templating import redirect_with_flash, render

router = APIRouter(include_in_schema=False)
PAGE = "/settings/idp"
#: what a new configuration starts from (and what a blank number field means)
_DEFAULTS: dict[str, Any] = IdPOptionsBase().model_dump()


def parse_rules(text: str) -> list[dict[str, str | None]]:
    """One rule a line: ``group = Role`` or ``group = Role @ environment``."""
    rules: list[dict[str, str | None]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        group, sep, rest = line.partition("=")
        if not sep or not group.strip() or not rest.strip():
            raise DomainError(
                f"Group rule on line {number} must read 'group = Role' or "
                "'group = Role @ environment'.",
                code="invalid_idp_config",
            )
        role, _, env = rest.partition("@")
        rules.append(
            {"group": group.strip(), "role": role.strip(), "environment": env.strip() or None}
        )
    return rules


def format_rules(rules: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r['group']} = {r['role']}" + (f" @ {r['environment']}" if r.get("environment") else "")
        for r in rules
    )


def _values_from_form(form: FormData) -> dict[str, Any]:
    return {
        "display_name": field(form, "display_name"),
        "issuer": field(form, "issuer"),
        "client_id": field(form, "client_id"),
        "token_endpoint_auth_method": field(form, "token_endpoint_auth_method"),
        "native_client_id": field(form, "native_client_id"),
        "scopes": field(form, "scopes").split(),
        "user_claim": field(form, "user_claim"),
        "groups_claim": field(form, "groups_claim"),
        "group_role_rules_text": field(form, "group_role_rules"),
        "clock_skew_seconds": field(form, "clock_skew_seconds") or _DEFAULTS["clock_skew_seconds"],
        "refresh_grace_seconds": field(form, "refresh_grace_seconds")
        or _DEFAULTS["refresh_grace_seconds"],
        "ca_bundle_pem": field(form, "ca_bundle_pem"),
        "jit_provisioning": form.get("jit_provisioning") == "on",
    }


def _page(
    request: Request,
    rt: Any,
    actor: Actor,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session() as db:
        stored = load_config(db, allow_insecure_http=rt.settings.allow_insecure_http)
        state = get_state(db)
        preconditions = activation.check_preconditions(db, actor)
        report = (
            state.last_test_report
            if stored is not None and state.last_test_version == stored.version
            else None
        )
        context = {
            "title": "Identity provider",
            "stored": stored,
            "active": state.active,
            "test_report": report,
            "test_ok": state.last_test_ok,
            "test_at": state.last_test_at,
            "preconditions": preconditions,
            "can_activate": all(p.ok for p in preconditions),
            "error": error,
            "redirect_uri": rt.settings.public_url + "/auth/oidc/callback",
            "post_logout_uri": rt.settings.public_url + "/login",
            "backchannel_uri": rt.settings.public_url + "/auth/oidc/backchannel-logout",
        }
    if values is None:
        if stored is not None:
            values = stored.settings.as_dict()
            values["group_role_rules_text"] = format_rules(values["group_role_rules"])
        else:
            values = {**_DEFAULTS, "group_role_rules_text": ""}
    context["values"] = values
    return render(request, "idp.html", context, status_code=status_code)


def _back(request: Request, message: str, kind: str = "success") -> Response:
    return redirect_with_flash(request, PAGE, message, kind)


@router.get(PAGE)
def idp_page(request: Request, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    return _page(request, rt, actor_of(request, admin))


@router.post(PAGE)
def idp_save(request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    actor = actor_of(request, admin)
    values = _values_from_form(form)
    version = field(form, "version")
    secret = form.get("client_secret")
    key = form.get("private_key_jwk")
    try:
        data = {k: v for k, v in values.items() if k != "group_role_rules_text"}
        data["group_role_rules"] = parse_rules(values["group_role_rules_text"])
        with rt.db.session() as db:
            stored = save_config(
                db,
                actor,
                data,
                box=rt.box,
                allow_insecure_http=rt.settings.allow_insecure_http,
                if_match=int(version) if version.isdigit() else 0,
                client_secret=secret if isinstance(secret, str) and secret else None,
                private_key_jwk=key if isinstance(key, str) and key.strip() else None,
            )
    except DomainError as exc:
        return _page(request, rt, actor, values=values, error=exc.detail, status_code=exc.status)
    return _back(request, f"Saved as configuration version {stored.version}. Test it next.")


@router.post(PAGE + "/test")
def idp_test(request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    ctx = rt.idp.current()
    report = idp_checks.run_checks(ctx, public_url=rt.settings.public_url)
    with rt.db.session() as db:
        idp_checks.record_report(db, actor_of(request, admin), report)
    if report.ok:
        return _back(request, f"Every check passed for configuration version {report.version}.")
    failed = ", ".join(c.name for c in report.checks if not c.ok)
    return _back(request, f"The test failed ({failed}); see the checks below.", "error")


@router.post(PAGE + "/activate")
def idp_activate(request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    try:
        activation.activate(rt.db.session, actor_of(request, admin))
    except DomainError as exc:
        return _back(request, exc.detail, "error")
    rt.users.invalidate()
    return _back(request, "Single sign-on is active. Only local admins can use passwords now.")


@router.post(PAGE + "/deactivate")
def idp_deactivate(request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    try:
        with rt.db.session() as db:
            activation.deactivate(db, actor_of(request, admin))
    except DomainError as exc:
        return _back(request, exc.detail, "error")
    rt.users.invalidate()
    return _back(request, "Single sign-on is off. Users with a password can use it again.")
