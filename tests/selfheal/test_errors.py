"""Classification and fingerprints."""

import pytest

from selfheal.errors import classify, fingerprint, normalize


@pytest.mark.parametrize(
    ("error", "exit_code", "exception_type", "kind"),
    [
        ("connection reset by peer", None, None, "transient"),
        ("HTTP 429 Too Many Requests", None, None, "transient"),
        ("Error: no API key configured", None, None, "permanent"),
        ("bash: claude: command not found", 127, None, "permanent"),
        ("context length exceeded (200k tokens)", None, None, "agent"),
        ("", -9, None, "agent"),
        ("FAILED tests/test_login.py::test_redirect - AssertionError", 1, None, "task"),
        ("anything", 75, None, "transient"),
        ("boom", None, "ConnectionRefusedError", "transient"),
        ("denied", None, "PermissionError", "permanent"),
        ("deep", None, "RecursionError", "agent"),
    ],
)
def test_classify(error: str, exit_code: int | None, exception_type: str | None, kind: str):
    assert classify(error, exit_code, exception_type) == kind


def test_fingerprint_ignores_volatile_parts():
    a = "timeout after 30s at 2026-12-01T10:00:00Z in /tmp/ws-1/app.py (id 3f2a9c1d)"
    b = "timeout after 45s at 2026-12-02T11:30:12Z in /var/run/x/app.py (id 99ab00ff)"
    assert normalize(a) == normalize(b)
    assert fingerprint("transient", a) == fingerprint("transient", b)
    assert fingerprint("transient", a) != fingerprint("task", a)
    assert fingerprint("task", "tests fail") != fingerprint("task", "build fails")
