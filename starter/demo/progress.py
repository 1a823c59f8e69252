"""Progress of named steps that run at the same time (the demo's scenarios): a live table with
rich on a terminal, one plain line per change otherwise (CI logs, pipes, `| tee`)."""

import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text


class Progress(Protocol):
    def start(self, name: str, detail: str = "") -> None: ...
    def update(self, name: str, note: str) -> None: ...
    def finish(self, name: str, ok: bool, note: str = "") -> None: ...
    def __enter__(self) -> "Progress": ...
    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass
class _Step:
    name: str
    detail: str
    began: float
    note: str = "starting"
    ended: float | None = None
    ok: bool | None = None
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))

    def elapsed(self, now: float) -> float:
        return (self.ended or now) - self.began


class LineProgress:
    """``[  12.3s] name: note`` for every change, flushed at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._t0 = time.monotonic()
        self._last: dict[str, str] = {}

    def _line(self, name: str, text: str) -> None:
        if self._last.get(name) == text:
            return
        self._last[name] = text
        elapsed = time.monotonic() - self._t0
        print(f"[{elapsed:6.1f}s] {name}: {text}", file=self._stream, flush=True)

    def start(self, name: str, detail: str = "") -> None:
        self._line(name, f"started{f' ({detail})' if detail else ''}")

    def update(self, name: str, note: str) -> None:
        self._line(name, note)

    def finish(self, name: str, ok: bool, note: str = "") -> None:
        self._line(name, ("done" if ok else "FAILED") + (f": {note}" if note else ""))

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *_: object) -> None:
        pass


class LiveProgress:
    """A live table, one row per step: a spinner, then ✓ or ✗; elapsed time; what it does now."""

    def __init__(self, console: Console) -> None:
        self._steps: dict[str, _Step] = {}
        self._live = Live(
            console=console, refresh_per_second=8, transient=False, get_renderable=self._render
        )

    def _render(self) -> RenderableType:
        now = time.monotonic()
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(style="bold", no_wrap=True, min_width=max(map(len, self._steps), default=0))
        grid.add_column(justify="right", style="dim", width=7, no_wrap=True)
        grid.add_column(ratio=1, overflow="ellipsis", no_wrap=True)
        for step in self._steps.values():
            if step.ok is None:
                glyph: RenderableType = step.spinner
            else:
                glyph = Text("✓", style="green") if step.ok else Text("✗", style="bold red")
            note = Text(step.note, style="red" if step.ok is False else "")
            if step.detail and step.ok is None:
                note.append(f"  · {step.detail}", style="dim")
            grid.add_row(glyph, step.name, f"{step.elapsed(now):5.1f}s", note)
        return grid

    def start(self, name: str, detail: str = "") -> None:
        self._steps[name] = _Step(name, detail, time.monotonic())

    def update(self, name: str, note: str) -> None:
        self._steps[name].note = note

    def finish(self, name: str, ok: bool, note: str = "") -> None:
        step = self._steps[name]
        step.ended, step.ok = time.monotonic(), ok
        step.note = note or ("done" if ok else "failed")

    def __enter__(self) -> "LiveProgress":
        self._live.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._live.stop()


def progress_for(stream: TextIO | None = None) -> Progress:
    """The live table when ``stream`` is a terminal, plain lines otherwise."""
    stream = stream or sys.stdout
    if stream.isatty():
        return LiveProgress(Console(file=stream))
    return LineProgress(stream)
