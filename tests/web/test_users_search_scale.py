"""The users page at scale: a bounded, honestly labelled total and index-friendly search
(issue 8). ``TOTAL_BOUND`` is lowered so that a handful of users crosses it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gatehouse.domain import users
from helpers import console_login


@pytest.fixture
def bound(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(users, "TOTAL_BOUND", 4)
    return 4


@pytest.fixture
def seven_devs(make_user: Callable[..., int]) -> None:
    for i in range(7):
        make_user(f"dev{i}", email=f"d{i}@example.com", display_name=f"Developer {i}")
    make_user("ops", email="ops@example.com", display_name="Dev Ops")


def test_total_is_exact_up_to_the_bound(
    client: TestClient, admin_headers: dict[str, str], bound: int, seven_devs: None
) -> None:
    body = client.get("/api/v1/users?q=ops", headers=admin_headers).json()
    assert (body["total"], body["total_is_estimate"]) == (1, False)
    body = client.get("/api/v1/users?q=dev&sort=-username&per_page=3", headers=admin_headers)
    assert (body.json()["total"], body.json()["total_is_estimate"]) == (bound, True)
    # Pages stay complete and ordered past the bound ...
    assert [u["username"] for u in body.json()["items"]] == ["ops", "dev6", "dev5"]
    # ... and the last one, not full, tells the exact total.
    body = client.get("/api/v1/users?q=dev&sort=-username&per_page=3&page=3", headers=admin_headers)
    assert (body.json()["total"], body.json()["total_is_estimate"]) == (8, False)


@pytest.mark.parametrize("sort", ["username", "-username", "email", "-created_at"])
def test_search_pages_are_ordered_and_disjoint(
    client: TestClient, admin_headers: dict[str, str], seven_devs: None, sort: str
) -> None:
    """Every match of ``dev`` (username, email or display name prefix) exactly once."""
    seen: list[str] = []
    for page in (1, 2, 3):
        body = client.get(
            f"/api/v1/users?q=DEV&per_page=3&page={page}&sort={sort}", headers=admin_headers
        ).json()
        assert body["total"] == 8 and body["total_is_estimate"] is False
        seen += [u["username"] for u in body["items"]]
    assert sorted(seen) == sorted([f"dev{i}" for i in range(7)] + ["ops"])
    if sort.lstrip("-") == "username":
        assert seen == sorted(seen, reverse=sort.startswith("-"))


def test_search_treats_like_wildcards_literally(
    client: TestClient, admin_headers: dict[str, str], make_user: Callable[..., int]
) -> None:
    make_user("a_b")
    make_user("axb")
    body = client.get("/api/v1/users?q=a_", headers=admin_headers).json()
    assert [u["username"] for u in body["items"]] == ["a_b"]
    assert client.get("/api/v1/users?q=%25", headers=admin_headers).json()["total"] == 0


def test_console_says_more_than_when_the_total_is_bounded(
    client: TestClient,
    local_admin: int,
    bound: int,
    seven_devs: None,
    make_user: Callable[..., int],
) -> None:
    for i in range(7, 30):
        make_user(f"dev{i}")
    assert console_login(client).status_code == 303
    page = client.get("/users?q=dev").text  # 31 matches (ops by display name), 25 a page
    assert "more than 4 users · page 1 of 2+" in page and 'rel="next"' in page
    last = client.get("/users?q=dev&page=2").text
    assert "31 users · page 2 of 2" in last and 'rel="next"' not in last
