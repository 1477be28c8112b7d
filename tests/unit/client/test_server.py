"""Server URLs as the SDK and the CLI accept them: normalised, https unless on loopback."""

from __future__ import annotations

import pytest

from gatehouse.client import ServerURLError, normalise_server_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("gatehouse.example.com/", "https://gatehouse.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_server_urls_are_normalised(raw: str, expected: str) -> None:
    assert normalise_server_url(raw) == expected


def test_plain_http_to_a_remote_server_is_refused() -> None:
    with pytest.raises(ServerURLError):
        normalise_server_url("http://gatehouse.example.com")
