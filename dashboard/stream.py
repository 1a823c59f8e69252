"""Live updates over SSE: one watcher per API process polls the ledger's change marker (a few
indexed lookups) every ``poll`` seconds while someone watches, rebuilds the document of each
watched window when it moved (or every ``refresh`` seconds, for ages and Temporal's side), and
pushes the page fragment only when it changed."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from dashboard.document import Window
from dashboard.page import render_live
from dashboard.service import HealthService, LedgerUnavailableError


class HealthHub:
    def __init__(self, service: HealthService, poll: float = 0.25, refresh: float = 5.0) -> None:
        self.service, self.poll, self.refresh = service, poll, refresh
        self._subscribers: dict[asyncio.Queue[str], Window] = {}
        self._last: dict[Window, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def fragment(self, window: Window) -> str:
        try:
            return render_live(await self.service.document(window))
        except LedgerUnavailableError as err:
            return render_live(None, error=str(err))

    async def subscribe(self, window: Window) -> AsyncIterator[str]:
        """Server-sent events for one viewer: the current fragment, then each change."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        html = await self.fragment(window)
        self._subscribers[queue] = window
        self._last.setdefault(window, html)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())
        try:
            yield "retry: 2000\n\n"
            yield _event(html)
            while not self._stopping.is_set():
                try:
                    html = await asyncio.wait_for(queue.get(), 15.0)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if self._stopping.is_set():
                    break
                yield _event(html)
        finally:
            self._subscribers.pop(queue, None)

    async def _watch(self) -> None:
        marker: object = None
        built = time.monotonic()
        while self._subscribers and not self._stopping.is_set():
            try:
                now_marker: object = await self.service.marker()
            except LedgerUnavailableError as err:
                now_marker = str(err)
            if now_marker != marker or time.monotonic() - built >= self.refresh:
                marker, built = now_marker, time.monotonic()
                for window in set(self._subscribers.values()):
                    html = await self.fragment(window)
                    if html != self._last.get(window):
                        self._last[window] = html
                        self._publish(window, html)
            await asyncio.sleep(self.poll)

    def _publish(self, window: Window, html: str) -> None:
        for queue, wanted in list(self._subscribers.items()):
            if wanted != window:
                continue
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()  # a slow viewer gets the latest only
            queue.put_nowait(html)

    async def stop(self) -> None:
        self._stopping.set()
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait("")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _event(html: str) -> str:
    return f"event: health\ndata: {json.dumps({'html': html})}\n\n"
