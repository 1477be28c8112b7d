"""The README documents every setting and keeps exactly two set-up commands at the top."""

from __future__ import annotations

from pathlib import Path

from gatehouse.settings import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    missing = [
        f"GATEHOUSE_{n.upper()}"
        for n in Settings.model_fields
        if f"`GATEHOUSE_{n.upper()}`" not in README
    ]
    assert not missing, f"README settings table lacks {missing}"


def test_readme_opens_with_make_run_and_make_test() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_readme_lists_every_exit_code_the_commands_use() -> None:
    """`gatehouse admin bootstrap` exits 3 when a local admin exists (tests/cli/test_main.py)."""
    codes = README.split("Exit codes of every `gatehouse` command:", 1)[1].split("\n\n", 1)[0]
    for code in ("`0` ok", "`1` error", "`2` usage", "`3` nothing to do", "`4` not signed in"):
        assert code in " ".join(codes.split()), code
    assert "`gatehouse admin bootstrap` when a local admin exists" in " ".join(codes.split())
