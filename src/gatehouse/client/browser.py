"""Whether a browser can be opened here — else the device flow is the way to sign in."""

from __future__ import annotations

import os
import sys


def browser_available() -> bool:
    """``$BROWSER`` always wins; an SSH session or a Linux box without a display has none."""
    if os.environ.get("BROWSER"):
        return True
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return False
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def why_no_browser() -> str:
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return "this is an SSH session"
    return "there is no display here (DISPLAY / WAYLAND_DISPLAY unset) and no $BROWSER"
