"""A ``$BROWSER`` program for CLI tests: sign in at the test IdP and hit the loopback callback.

    BROWSER="/path/to/python /work/main/tests/idp/browser.py" \
    TEST_IDP_USERNAME=alice TEST_IDP_PASSWORD=alice-password  gatehouse auth login ...

Python's ``webbrowser`` runs ``$BROWSER URL`` (or substitutes ``%s``) and WAITS for it, so by
default this program re-launches itself detached and exits 0 at once; the detached copy does
the work: ``login(URL)`` at the IdP (the IdP origin is the URL's origin), then GETs the returned
redirect (``http://127.0.0.1:PORT/callback?code=...``). Set ``TEST_IDP_BROWSER_FOREGROUND=1`` (or
pass ``--foreground``) to do the work in-process and get a meaningful exit code.

Progress and errors are appended to ``$TEST_IDP_BROWSER_LOG`` (default:
``$TMPDIR/gatehouse-test-browser.log``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from idp.fixture import browse, new_browser


def _log_path() -> Path:
    default = Path(tempfile.gettempdir()) / "gatehouse-test-browser.log"
    return Path(os.environ.get("TEST_IDP_BROWSER_LOG", str(default)))


def _log(message: str) -> None:
    line = f"[test-browser {time.strftime('%H:%M:%S')} pid={os.getpid()}] {message}\n"
    try:
        with _log_path().open("a", encoding="utf-8") as fh:
            fh.write(line)
    except OSError:
        pass
    sys.stderr.write(line)


def run(url: str) -> int:
    username = os.environ.get("TEST_IDP_USERNAME")
    password = os.environ.get("TEST_IDP_PASSWORD")
    _log(f"opening {url}")
    try:
        with new_browser(timeout=float(os.environ.get("TEST_IDP_BROWSER_TIMEOUT", "15"))) as b:
            result = browse(url, username=username, password=password, client=b)
            if result.location is None:
                _log(f"ended on IdP page {result.page} at {result.url}")
                return 0 if result.page in ("device-success", "logout-success") else 1
            _log(f"following redirect to {result.location}")
            resp = b.get(result.location)
            _log(f"callback answered HTTP {resp.status_code}")
            return 0 if resp.status_code < 400 else 1
    except Exception as exc:
        _log(f"FAILED: {exc!r}\n{traceback.format_exc()}")
        return 1


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--foreground"]
    foreground = "--foreground" in argv or os.environ.get("TEST_IDP_BROWSER_FOREGROUND") == "1"
    if len(args) != 1:
        sys.stderr.write("usage: browser.py [--foreground] URL\n")
        return 2
    if foreground:
        return run(args[0])
    subprocess.Popen(  # detached: webbrowser waits for us, the CLI waits for the callback
        [sys.executable, str(Path(__file__).resolve()), "--foreground", args[0]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    _log(f"started detached worker for {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
