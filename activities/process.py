"""One way to run a command for an activity: a shell in its own process group, its output read
line by line, a heartbeat while it runs, and on timeout or cancel the whole group stopped: TERM,
a grace period for it to clean up, then KILL for whatever is left. Agents and builds both use it.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

GRACE = 3.0  # seconds between TERM and KILL
_REAPED_WITHIN = 5.0


async def run_in_group(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: Callable[[str], None],
    heartbeat: Callable[[], None],
    every: float = 1.0,
    grace: float = GRACE,
) -> int | None:
    """Run ``command`` (``sh -c``) in ``cwd``; each output line (stdout and stderr, without its
    newline) goes to ``on_line``, ``heartbeat`` is called every ``every`` seconds. Returns the
    exit code, or None when ``timeout`` ran out; a cancel stops the group and re-raises."""
    proc = await asyncio.create_subprocess_shell(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )

    async def pump() -> int:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            on_line(raw.decode(errors="replace").rstrip("\r\n"))
        return await proc.wait()

    async def keep_alive() -> None:
        while True:
            heartbeat()
            await asyncio.sleep(every)

    alive = asyncio.create_task(keep_alive())
    try:
        async with asyncio.timeout(timeout):
            return await pump()
    except TimeoutError:
        await stop_group(proc, grace)
        return None
    except asyncio.CancelledError:
        await stop_group(proc, grace)
        raise
    finally:
        alive.cancel()


async def stop_group(proc: asyncio.subprocess.Process, grace: float = GRACE) -> None:
    """TERM the process group, give its leader ``grace`` seconds to exit, then KILL the group
    (children that outlived their shell included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), _REAPED_WITHIN)
