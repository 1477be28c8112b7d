"""Console pages for environments: list, register (join token shown once), detail, deregister,
the prerequisites editor — and, on an environment server, how fresh its synced copy is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gatehouse.domain import environments
from gatehouse.domain.errors import DomainError
from gatehouse.sync.puller import read_status
from gatehouse.web.api.environments import join_command
from gatehouse.web.console.forms import ConsoleAdmin, Form, field
from gatehouse.web.deps import RowId, RuntimeDep, actor_of
from gatehouse.web.templating import redirect_with_flash, render

router = APIRouter(include_in_schema=False)
status_router = APIRouter(include_in_schema=False)


def _list_page(
    request: Request,
    rt: RuntimeDep,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session() as db:
        views = environments.view(db)
        return render(
            request,
            "environments.html",
            {
                "title": "Environments",
                "views": views,
                "all_ok": all(v.ok for v in views),
                "kinds": environments.KINDS,
                "values": values or {"kind": "dev"},
                "error": error,
            },
            status_code=status_code,
        )


def _token_page(request: Request, rt: RuntimeDep, env_id: RowId, token: str) -> Response:
    with rt.db.session() as db:
        env = environments.get(db, env_id)
        return render(
            request,
            "environment_token.html",
            {
                "title": f"Join {env.name}",
                "env": env,
                "token": token,
                "command": join_command(rt.settings, env, token),
            },
        )


@router.get("/environments")
def environment_list(request: Request, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    return _list_page(request, rt)


@router.post("/environments")
def environment_register(
    request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    values = {k: field(form, k) for k in ("name", "base_url", "kind")}
    try:
        with rt.db.session() as db:
            env, token = environments.register(
                db,
                actor_of(request, admin),
                name=values["name"],
                base_url=values["base_url"],
                kind=values["kind"],
                allow_insecure_http=rt.settings.allow_insecure_http,
            )
            env_id = env.id
    except DomainError as exc:
        return _list_page(request, rt, values, exc.detail, exc.status)
    return _token_page(request, rt, env_id, token)


@router.get("/environments/prerequisites")
def prerequisites_page(request: Request, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    return _prerequisites(request, rt)


def _prerequisites(
    request: Request,
    rt: RuntimeDep,
    rows: list[tuple[str, str]] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session() as db:
        table = rows if rows is not None else list(environments.prerequisite_table(db).items())
        return render(
            request,
            "prerequisites.html",
            {"title": "Prerequisites", "rows": table, "error": error},
            status_code=status_code,
        )


@router.post("/environments/prerequisites")
def prerequisites_save(
    request: Request, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    components = [v for v in form.getlist("component") if isinstance(v, str)]
    versions = [v for v in form.getlist("min_version") if isinstance(v, str)]
    rows = [(c.strip(), v.strip()) for c, v in zip(components, versions, strict=False)]
    table = {c: v for c, v in rows if c and v}
    try:
        with rt.db.session() as db:
            environments.set_prerequisites(db, actor_of(request, admin), table)
    except DomainError as exc:
        return _prerequisites(request, rt, rows, exc.detail, exc.status)
    return redirect_with_flash(request, "/environments/prerequisites", "Prerequisites saved.")


def _detail(request: Request, rt: RuntimeDep, env_id: RowId) -> Response:
    with rt.db.session() as db:
        environments.get(db, env_id)
        view = next(v for v in environments.view(db) if v.env.id == env_id)
        return render(
            request,
            "environment_detail.html",
            {"title": f"Environment {view.env.name}", "v": view},
        )


@router.get("/environments/{env_id}")
def environment_detail(
    request: Request, env_id: RowId, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    return _detail(request, rt, env_id)


@router.post("/environments/{env_id}/join-token")
def environment_join_token(
    request: Request, env_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    with rt.db.session() as db:
        token = environments.rotate_join_token(
            db, actor_of(request, admin), environments.get(db, env_id)
        )
    return _token_page(request, rt, env_id, token)


@router.get("/environments/{env_id}/deregister")
def environment_deregister_confirm(
    request: Request, env_id: RowId, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    with rt.db.session() as db:
        env = environments.get(db, env_id)
        context: dict[str, Any] = {
            "title": f"Deregister {env.name}",
            "message": f"Deregister {env.name} ({env.base_url})? Its credential stops working "
            "at once: it keeps its last copy but receives no more changes, and its role "
            "assignments are removed. This cannot be undone.",
            "action": f"/environments/{env_id}/deregister",
            "confirm_label": "Deregister environment",
            "cancel": f"/environments/{env_id}",
        }
    return render(request, "confirm.html", context)


@router.post("/environments/{env_id}/deregister")
def environment_deregister(
    request: Request, env_id: RowId, form: Form, admin: ConsoleAdmin, rt: RuntimeDep
) -> Response:
    with rt.db.session() as db:
        env = environments.get(db, env_id)
        name = env.name
        environments.deregister(db, actor_of(request, admin), env)
    rt.users.invalidate()
    return redirect_with_flash(request, "/environments", f"Environment {name} deregistered.")


@status_router.get("/sync")
def sync_status(request: Request, admin: ConsoleAdmin, rt: RuntimeDep) -> Response:
    """Environment server: where its copy comes from and how fresh it is."""
    with rt.db.session() as db:
        status = read_status(db, rt.settings)
    return render(
        request,
        "sync_status.html",
        {"title": "Sync status", "s": status, "console_url": rt.settings.console_url},
    )
