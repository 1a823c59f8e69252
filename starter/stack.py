"""Where the running ``selfheal dev`` stack of a data dir listens, so the commands that talk to
its API (``pr replay``) follow its ``--api-port`` without being told.

``selfheal dev`` writes ``<data dir>/stack.json`` when it is up and removes it when it stops; a
file left by a stack that was killed is ignored (its process is gone)."""

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

DEFAULT_API_URL = "http://127.0.0.1:8080"
FILE = "stack.json"


@contextlib.contextmanager
def announced(data_dir: Path, *, api_url: str, temporal: str, ui_url: str) -> Iterator[Path]:
    """``stack.json`` in ``data_dir`` for as long as the block runs."""
    path = data_dir / FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    body = {"api_url": api_url, "temporal": temporal, "ui_url": ui_url, "pid": os.getpid()}
    path.write_text(json.dumps(body) + "\n")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


def running_api_url(data_dir: Path) -> str | None:
    """The API URL of the live ``selfheal dev`` of ``data_dir``, if there is one."""
    try:
        body = json.loads((data_dir / FILE).read_text())
        pid, url = int(body["pid"]), str(body["api_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    return url


def api_url(data_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """The selfheal API to talk to: ``SELFHEAL_API_URL``, else the running ``selfheal dev`` of
    this data dir, else the default port."""
    env = os.environ if env is None else env
    url = env.get("SELFHEAL_API_URL") or running_api_url(data_dir) or DEFAULT_API_URL
    return url.rstrip("/")
