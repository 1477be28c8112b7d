"""browser_available(): a browser is offered only where one can open ($BROWSER, a display, no
SSH session)."""

from __future__ import annotations

import pytest

from gatehouse.client import browser_available


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BROWSER": "/bin/true", "SSH_CONNECTION": "x"}, True),
        ({"SSH_CONNECTION": "1 2 3 4", "DISPLAY": ":0"}, False),
        ({}, False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, True),
    ],
)
def test_browser_is_offered_only_where_one_can_open(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    for name in ("BROWSER", "SSH_CONNECTION", "SSH_TTY", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.platform", "linux")
    assert browser_available() is expected
