"""Supervision: signals and Updates queued for a workflow's main loop, and one watched deadline.

Handlers never act themselves: they queue an ``Op``, and the main loop carries the queue out in
order between its waits (``Supervisor.wait_until``), so a signal and the ladder never interleave
halfway. While it waits, the loop also keeps a deadline that the workflow computes (the
no-progress watch of a running attempt) and calls back when it passes.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
# The next deadline to watch and the summary of its timer; (None, "") when there is none.
Watch = tuple[datetime | None, str]


class Refused(Exception):
    """An operation that does not apply now (say, ``acknowledge`` with no open incident)."""


@dataclass
class Op:
    """A signal or an Update, queued for the main loop; an Update's handler waits for ``done``."""

    name: str
    body: BaseModel
    update: bool = False
    done: bool = False
    answer: str = ""
    refused: str | None = None
    incident: Any = None


def parse(name: str, model: type[M], body: Any) -> M:
    """A signal or Update body as ``model``: no body or ``null`` takes the defaults; a malformed
    one raises ``Refused`` with one line that says what is wrong."""
    try:
        return model.model_validate({} if body is None else body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Refused(f"{name}: {where}: {first['msg']}") from None


def refusal(message: str, type: str) -> ApplicationError:
    """An Update's refusal: the caller gets ``message``; the workflow goes on."""
    return ApplicationError(message, type=type, non_retryable=True)


class Supervisor:
    """The queue of one workflow and the loop that carries it out.

    ``apply`` carries out one operation and returns its answer (or raises ``Refused``);
    ``watch`` returns the next deadline to keep; ``on_watch`` is called when it passes.
    Refused signals are recorded in ``ignored``; refused Updates answer their caller."""

    def __init__(
        self,
        apply: Callable[[Op], Awaitable[str]],
        watch: Callable[[], Watch],
        on_watch: Callable[[], Awaitable[None]],
        ignored: list[str],
    ) -> None:
        self._apply = apply
        self._watch = watch
        self._on_watch = on_watch
        self._ignored = ignored
        self._queue: list[Op] = []

    def enqueue(self, name: str, body: BaseModel) -> None:
        self._queue.append(Op(name, body))

    async def ask(self, name: str, body: BaseModel) -> Op:
        """An Update: queue it and wait until the main loop has decided it."""
        op = Op(name, body, update=True)
        self._queue.append(op)
        await workflow.wait_condition(lambda: op.done)
        return op

    async def drain(self) -> None:
        """Carry out the operations received since the last look, in order."""
        while self._queue:
            op = self._queue.pop(0)
            try:
                op.answer = await self._apply(op)
            except Refused as refused:
                op.refused = str(refused)
                if not op.update:
                    self._ignored.append(f"{op.name}: {refused}")
            op.done = True

    async def wait_until(
        self, done: Callable[[], bool], until: datetime | None = None, until_summary: str = ""
    ) -> None:
        """Wait until ``done()`` (or ``until``), carrying out the queue and keeping the watch."""
        while True:
            await self.drain()
            now = workflow.now()
            if done() or (until is not None and now >= until):
                return
            deadline, summary = self._watch()
            if until is not None and (deadline is None or until <= deadline):
                deadline, summary = until, until_summary
            if deadline is not None and deadline <= now:
                await self._on_watch()
                continue
            try:
                await workflow.wait_condition(
                    lambda: done() or bool(self._queue),
                    timeout=(deadline - now) if deadline else None,
                    timeout_summary=summary,
                )
            except TimeoutError:
                await self._on_watch()

    async def settle(self, why: str) -> None:
        """Refuse every Update still waiting (none, normally: a finished workflow refuses them
        in its validators), then let the handlers return before the execution closes."""
        for op in self._queue:
            op.refused, op.done = why, True
        self._queue.clear()
        await workflow.wait_condition(workflow.all_handlers_finished)
