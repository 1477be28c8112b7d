"""``python -m gatehouse.cli`` — the same as the ``gatehouse`` command."""

from gatehouse.cli.main import app

app(prog_name="gatehouse")
