"""A real, throwaway PostgreSQL cluster for tests: Debian's server binaries (``initdb``,
``pg_ctl``), a temp dir, a free port on 127.0.0.1, its unix socket in the temp dir, trust auth.

As root the server runs as the ``postgres`` user (PostgreSQL refuses to run as root). Missing
binaries fail the tests that need them with the command that installs them: CI runs
``make test``, which installs them first (.ci/ensure-test-deps), so these tests never skip.

    with PostgresCluster.start() as cluster:
        url = cluster.new_database()   # postgresql+psycopg://postgres@127.0.0.1:PORT/t_...
        url = cluster.new_schema()     # .../postgres?options=-csearch_path%3Dt_... (faster)
"""

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Self

import psycopg

from starter.devserver import free_port

INSTALL_HINT = "install PostgreSQL's server: bash .ci/ensure-test-deps (apt-get install postgresql)"


def find_bindir() -> Path | None:
    """SELFHEAL_PG_BINDIR, else Debian's newest /usr/lib/postgresql/*/bin, else pg_ctl on PATH."""
    candidates = [os.environ.get("SELFHEAL_PG_BINDIR", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    on_path = shutil.which("pg_ctl")
    candidates += [str(Path(on_path).parent)] if on_path else []
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


class PostgresCluster:
    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self.data = root / "data"

    @classmethod
    def start(cls) -> Self:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError(f"no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL_HINT}")
        root = Path(tempfile.mkdtemp(prefix="selfheal-pg-"))
        cluster = cls(bindir, root, free_port())
        try:
            if os.geteuid() == 0:
                shutil.chown(root, "postgres", "postgres")
            cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust",
                         "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
            options = (
                f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
            )
            cluster._run("pg_ctl", "start", "-D", str(cluster.data), "-l", str(root / "log"),
                         "-o", options, "-w", "-t", "60")  # fmt: skip
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        user = f"postgres:{password}" if password else "postgres"
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database in the cluster; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def new_schema(self) -> str:
        """A fresh, empty schema, first on the search path of the URL returned: as empty as a new
        database for the ledger (its tables and alembic_version go there) and about 50 times
        cheaper to make than CREATE DATABASE."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if check and done.returncode != 0:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}{tail}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
