"""The image test prints how it got its base image, how long the build took and the size."""

from __future__ import annotations

import engine
import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if engine.FACTS:
        terminalreporter.section("container image")
        for name, value in engine.FACTS.items():
            terminalreporter.write_line(f"{name}: {value}")
