"""The health page: Jinja2 with autoescape, so every text from tasks and errors is escaped."""

from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape

from dashboard import charts
from dashboard.document import WINDOWS, HealthDocument
from selfheal.durations import COARSE, format_duration


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}" if value in (0, 1) else f"{value:.1%}"


def dur(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(seconds, COARSE)


env = Environment(
    loader=PackageLoader("dashboard", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(pct=pct, dur=dur)
env.globals.update(bars=charts.bars, spark=charts.spark, uptime_line=charts.uptime_line)


def render_live(doc: HealthDocument | None, error: str | None = None) -> str:
    """The part of the page that the stream replaces."""
    return env.get_template("live.html").render(doc=doc, error=error)


def render_page(window: str, doc: HealthDocument | None, error: str | None = None) -> str:
    return env.get_template("health.html").render(
        doc=doc,
        error=error,
        window=window,
        windows=list(WINDOWS),
        stream_url=f"/api/health/stream?window={quote(window)}",
    )
