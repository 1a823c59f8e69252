"""Failure classification and fingerprints: pure functions, safe inside workflows.

Kinds: ``transient`` (retry the same agent), ``agent`` (the agent's own fault: reassign to a peer),
``task`` (the approach is wrong: change strategy), ``permanent`` (no retry; escalate).
"""

import hashlib
import re
from typing import Literal

ErrorKind = Literal["transient", "agent", "task", "permanent"]

# Checked in order: the first family whose pattern matches decides.
_RULES: list[tuple[ErrorKind, re.Pattern[str]]] = [
    (
        "permanent",
        re.compile(
            r"permission denied|unauthori[sz]ed|forbidden|invalid api key|no api key|"
            r"authentication failed|command not found|no such file or directory|"
            r"quota exceeded|billing|not permitted|access denied",
            re.I,
        ),
    ),
    (
        "transient",
        re.compile(
            r"timed? ?out|timeout|connection (reset|refused|aborted)|temporar(il)?y|"
            r"try again|rate limit|too many requests|\b429\b|\b50[234]\b|unavailable|"
            r"network|econnreset|eai_again|dns|socket hang up|overloaded",
            re.I,
        ),
    ),
    (
        "agent",
        re.compile(
            r"context (length|window)|max(imum)? tokens|token limit|agent (crashed|died|"
            r"confused|gave up)|hallucinat|killed by signal|out of memory|segmentation fault|"
            r"looping|lost (its|the) context",
            re.I,
        ),
    ),
]

# Exit codes with a conventional meaning (sysexits.h and the shell).
_EXIT_CODES: dict[int, ErrorKind] = {
    75: "transient",  # EX_TEMPFAIL
    69: "transient",  # EX_UNAVAILABLE
    77: "permanent",  # EX_NOPERM
    78: "permanent",  # EX_CONFIG
    126: "permanent",  # not executable
    127: "permanent",  # command not found
    137: "agent",  # SIGKILL (often the OOM killer)
    139: "agent",  # SIGSEGV
}


# Exception type names (as Temporal reports them in an ApplicationError's ``type``).
_EXCEPTION_TYPES: dict[str, ErrorKind] = {
    "TimeoutError": "transient",
    "ConnectionError": "transient",
    "ConnectionResetError": "transient",
    "ConnectionRefusedError": "transient",
    "ConnectTimeout": "transient",
    "ReadTimeout": "transient",
    "RemoteProtocolError": "transient",
    "HTTPStatusError": "transient",
    "EndpointDown": "transient",
    "PermissionError": "permanent",
    "FileNotFoundError": "permanent",
    "NotImplementedError": "permanent",
    "MemoryError": "agent",
    "RecursionError": "agent",
}


def classify(
    error: str, exit_code: int | None = None, exception_type: str | None = None
) -> ErrorKind:
    """The kind of a failure from its exception type, exit code and output, in that order;
    unknown failures are ``task``."""
    if exception_type in _EXCEPTION_TYPES:
        return _EXCEPTION_TYPES[exception_type]
    if exit_code is not None:
        if exit_code < 0:
            return "agent"  # killed by a signal
        if exit_code in _EXIT_CODES:
            return _EXIT_CODES[exit_code]
    for kind, pattern in _RULES:
        if pattern.search(error):
            return kind
    return "task"


_VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}:\d{2}(\.\d+)?z?", re.I), "<time>"),
    (re.compile(r"\b[0-9a-f]{7,40}\b", re.I), "<hex>"),
    (re.compile(r"(/[\w.\-]+)+/?"), "<path>"),
    (re.compile(r"\d+"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalize(error: str) -> str:
    text = error.strip().lower()
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text.strip()


def fingerprint(kind: str, error: str) -> str:
    """A stable id for "the same error": volatile parts (numbers, paths, ids) are ignored."""
    digest = hashlib.sha256(f"{kind}|{normalize(error)}".encode()).hexdigest()
    return f"{kind}-{digest[:12]}"
