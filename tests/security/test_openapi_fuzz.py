"""Issue 9 item 6: schemathesis against /openapi.json, in-process (ASGI), as an administrator
(bearer) and unauthenticated. A fixed budget and a fixed seed (hypothesis ``derandomize``) keep
the run reproducible and short: every operation gets ``EXAMPLES`` generated cases per caller.

Checks: no 5xx, a documented status code, the documented content type, a body that matches the
documented schema.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

#: Cases per operation and caller (about 45 operations x 2 callers x EXAMPLES requests).
EXAMPLES = 40
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the fixed seed: the same cases on every run and in CI
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


def fuzz(app: Any, headers: dict[str, str] | None) -> list[str]:
    """Run every operation of the app's schema; the failures, one line each."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except BaseException as exc:  # schemathesis raises a group; collect every finding
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


def test_api_conforms_to_its_schema_for_an_administrator(
    app: Any, admin_headers: dict[str, str]
) -> None:
    failures = fuzz(app, admin_headers)
    assert not failures, "\n\n".join(failures)


def test_api_conforms_to_its_schema_unauthenticated(app: Any) -> None:
    failures = fuzz(app, None)
    assert not failures, "\n\n".join(failures)
