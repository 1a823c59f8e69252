"""Small inline SVG charts for the health page: no JavaScript, no CDN. Only numbers and times
go into the markup; the time labels are formatted here, never taken from the ledger's text."""

from markupsafe import Markup

from dashboard.document import TrendPoint


def _label(point: TrendPoint, bucket_s: int) -> str:
    return point.start.strftime("%a %H:%M" if bucket_s >= 3600 else "%H:%M")


def _bar(p: TrendPoint, top: int, x: float, width: float, span: float, base: float) -> str:
    """A bucket's attempts (grey) with its failures (red) in front, standing on ``base``;
    ``top`` attempts are ``span`` high."""
    h, f = p.attempts / top * span, p.failed / top * span
    return (
        f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{width:.1f}" height="{h:.1f}" class="ok"/>'
        f'<rect x="{x:.1f}" y="{base - f:.1f}" width="{width:.1f}" height="{f:.1f}" class="bad"/>'
    )


def bars(points: list[TrendPoint], bucket_s: int, width: int = 600, height: int = 90) -> Markup:
    """Attempts per bucket (grey), the failed share in red."""
    if not points:
        return Markup("")
    top = max((p.attempts for p in points), default=0) or 1
    step = width / len(points)
    parts = []
    for i, p in enumerate(points):
        tip = f"{_label(p, bucket_s)}: {p.attempts} attempts, {p.failed} failed"
        bar = _bar(p, top, i * step + 1, max(step - 2, 1), height - 14, height - 12)
        parts.append(f"<g><title>{tip}</title>{bar}</g>")
    axis = (
        f'<text x="0" y="{height - 1}">{_label(points[0], bucket_s)}</text>'
        f'<text x="{width}" y="{height - 1}" text-anchor="end">now</text>'
        f'<text x="0" y="9">{top}</text>'
    )
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" class="chart" role="img" '
        f'aria-label="attempts and failures per bucket">{"".join(parts)}{axis}</svg>'
    )


def line(
    values: list[float | None],
    labels: list[str],
    width: int = 600,
    height: int = 90,
    name: str = "uptime",
) -> Markup:
    """A 0..100 % line; gaps where there is no value."""
    if not values:
        return Markup("")
    step = width / max(len(values) - 1, 1)
    segments: list[list[str]] = [[]]
    dots = []
    for i, v in enumerate(values):
        if v is None:
            if segments[-1]:
                segments.append([])
            continue
        x, y = i * step, 8 + (1 - v) * (height - 22)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2"><title>{labels[i]}: '
                    f"{v:.1%}</title></circle>")  # fmt: skip
    lines = "".join(
        f'<polyline points="{" ".join(s)}" fill="none"/>' for s in segments if len(s) > 1
    )
    grid = (
        f'<line x1="0" x2="{width}" y1="8" y2="8" class="grid"/>'
        f'<text x="0" y="7">100%</text><text x="0" y="{height - 1}">{labels[0]}</text>'
        f'<text x="{width}" y="{height - 1}" text-anchor="end">now</text>'
    )
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" class="chart line" role="img" '
        f'aria-label="{name} per bucket">{grid}{lines}{"".join(dots)}</svg>'
    )


def spark(points: list[TrendPoint], width: int = 120, height: int = 22) -> Markup:
    """An agent's attempts (grey) and failures (red) per bucket, tiny."""
    if not points:
        return Markup("")
    top = max((p.attempts for p in points), default=0) or 1
    step = width / len(points)
    rects = "".join(
        _bar(p, top, i * step, max(step - 1, 0.5), height, height) for i, p in enumerate(points)
    )
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" class="spark" aria-hidden="true">{rects}</svg>'
    )


def uptime_line(points: list[TrendPoint], bucket_s: int) -> Markup:
    return line([p.uptime for p in points], [_label(p, bucket_s) for p in points])
