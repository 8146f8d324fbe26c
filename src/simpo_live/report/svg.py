"""Tiny inline-SVG charts (line charts and bar groups), so the report needs no network and no JS library."""

from __future__ import annotations

import html
import math

WIDTH, HEIGHT = 420, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 12, 26, 30
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high == low:
        return [low]
    return [low + (high - low) * i / count for i in range(count + 1)]


def _fmt(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 100000:
        return f"{value:.4g}"
    return f"{value:.2e}"


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], plot_id: str) -> str:
    """An SVG line chart of named (x, y) series; non-finite points are skipped."""
    points = {name: [(x, y) for x, y in pts if math.isfinite(y)] for name, pts in series.items()}
    points = {name: pts for name, pts in points.items() if pts}
    all_x = [x for pts in points.values() for x, _ in pts] or [0.0, 1.0]
    all_y = [y for pts in points.values() for _, y in pts] or [0.0, 1.0]
    x0, x1 = min(all_x), max(all_x)
    y0, y1 = min(all_y), max(all_y)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def sx(x: float) -> float:
        return PAD_LEFT + (x - x0) / (x1 - x0) * inner_w

    def sy(y: float) -> float:
        return PAD_TOP + (1 - (y - y0) / (y1 - y0)) * inner_h

    parts = [f'<svg class="plot" data-plot="{html.escape(plot_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img"><title>{html.escape(title)}</title>',
             f'<text x="{PAD_LEFT}" y="16" class="ptitle">{html.escape(title)}</text>']
    for y in _ticks(y0, y1):
        parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" class="grid"/>'
                     f'<text x="{PAD_LEFT - 4}" y="{sy(y) + 4:.1f}" class="tick" text-anchor="end">{_fmt(y)}</text>')
    for x in _ticks(x0, x1):
        parts.append(f'<text x="{sx(x):.1f}" y="{HEIGHT - 10}" class="tick" text-anchor="middle">{_fmt(x)}</text>')
    for i, (name, pts) in enumerate(points.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
        parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        if len(pts) <= 12:
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in pts]
        parts.append(f'<text x="{WIDTH - PAD_RIGHT - 4}" y="{PAD_TOP + 12 + 13 * i}" text-anchor="end" '
                     f'fill="{color}" class="legend">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(title: str, groups: dict[str, list[float]], plot_id: str, bins: int = 16) -> str:
    """Overlaid step histograms (as fractions) of several value lists on a shared range."""
    values = [v for vs in groups.values() for v in vs]
    if not values:
        return line_chart(title, {}, plot_id)
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    series = {}
    for name, vs in groups.items():
        counts = [0] * bins
        for v in vs:
            counts[min(bins - 1, int((v - low) / width))] += 1
        total = max(len(vs), 1)
        series[name] = [(low + (i + 0.5) * width, c / total) for i, c in enumerate(counts)]
    return line_chart(title, series, plot_id)
