"""Console page for registered apps: list, register, delete (after a confirmation page)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gatehouse.domain import apps
from gatehouse.domain.errors import DomainError
from gatehouse.runtime import Runtime
from gatehouse.web.console.forms import ConsoleAdmin, Form, field
from gatehouse.web.deps import RowId, RuntimeDep, actor_of
from gatehouse.web.templating import redirect_with_flash, render

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    rt: Runtime,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session() as db:
        rows = [(a.id, a.name, list(a.allowed_origins)) for a in apps.list_apps(db)]
    return render(
        request,
        "apps.html",
        {
            "title": "Apps",
            "rows": rows,
            "values": values or {},
            "errors": errors or {},
            "public_url": rt.settings.public_url,
        },
        status_code=status_code,
    )


@router.get("/apps")
def app_list(request: Request, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    return _page(request, rt)


@router.post("/apps")
def app_register(request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    values = {"name": field(form, "name"), "allowed_origins": field(form, "allowed_origins")}
    origins = [line.strip() for line in values["allowed_origins"].splitlines() if line.strip()]
    try:
        with rt.db.session() as db:
            app = apps.register_app(
                db,
                actor_of(request, admin),
                name=values["name"],
                allowed_origins=origins,
                allow_insecure_http=rt.settings.allow_insecure_http,
            )
            name = app.name
    except DomainError as exc:
        key = "name" if exc.code in ("invalid_name", "app_name_taken") else "allowed_origins"
        return _page(request, rt, values, {key: exc.detail}, exc.status)
    return redirect_with_flash(request, "/apps", f"App {name} registered.")


@router.get("/apps/{app_id}/delete")
def app_delete_confirm(
    request: Request, app_id: RowId, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    with rt.db.session() as db:
        app = apps.get_app(db, app_id)
        name = app.name
    return render(
        request,
        "confirm.html",
        {
            "title": f"Delete app {name}?",
            "message": f"Gatehouse will no longer send users back to {name} after sign-in, and "
            "its forward-auth redirects will be refused.",
            "action": f"/apps/{app_id}/delete",
            "confirm_label": "Delete app",
            "cancel": "/apps",
        },
    )


@router.post("/apps/{app_id}/delete")
def app_delete(
    request: Request, app_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    with rt.db.session() as db:
        app = apps.get_app(db, app_id)
        name = app.name
        apps.delete_app(db, actor_of(request, admin), app)
    return redirect_with_flash(request, "/apps", f"App {name} deleted.")
