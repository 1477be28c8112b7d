"""Username normalisation and validation."""

from __future__ import annotations

import pytest

from gatehouse.domain.errors import InvalidInput
from gatehouse.domain.users import username_key, validate_username


def test_username_key_is_case_insensitive_after_nfkc() -> None:
    assert username_key("Alice") == username_key("ALICE") == username_key("alice")
    # Fullwidth letters fold to ASCII under NFKC.
    assert username_key("\uff21lice") == username_key("alice")


def test_username_key_folds_german_sharp_s() -> None:
    assert username_key("STRASSE") == username_key("straße")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "a b",
        "tab\tname",
        "new\nline",
        "_lead",
        ".lead",
        "x" * 151,
        "semi;colon",
        "slash/name",
        "\u0000nul",
        "o\u2019brien",  # a typographic apostrophe would pass for o'brien
        "'lead",
    ],
)
def test_invalid_usernames_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        validate_username(bad)


@pytest.mark.parametrize(
    "good",
    ["alice", "a.b-c_d", "user@example.com", "Zoë", "u+1", "7", "o'brien", "o'brien@example.com"],
)
def test_valid_usernames_are_accepted(good: str) -> None:
    assert validate_username(good)
