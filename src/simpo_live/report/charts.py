"""Charts for the report, drawn by matplotlib and inlined as SVG (text kept as text), so the page needs no network.

Each chart is a `<div class="plot" data-plot=ID>` around one SVG: line charts with optional error bars and a
reference line, and overlaid histograms on shared bins. Legends sit outside the axes, so they never cover data.
"""

from __future__ import annotations

import html
import io
import math

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402

SIZE_INCHES = (5.2, 2.7)
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
STYLE = {"svg.fonttype": "none", "svg.hashsalt": "simpo-live", "font.size": 8, "axes.titlesize": 9,
         "axes.spines.top": False, "axes.spines.right": False}

Series = dict[str, list[tuple[float, float]]]


def _finite(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(y)]


def _to_svg(fig, plot_id: str, title: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prologue and doctype: this lives inside HTML
    return (f'<div class="plot" data-plot="{html.escape(plot_id)}" title="{html.escape(title)}">{svg}</div>')


def _finish(ax, title: str, xlabel: str, ylabel: str | None, has_legend: bool) -> None:
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, color="#eeeeee", linewidth=0.6)
    ax.set_axisbelow(True)
    if has_legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)


def line_chart(title: str, series: Series, plot_id: str, *, errors: dict[str, list[float]] | None = None,
               xlabel: str = "step", ylabel: str | None = None, reference: float | None = None) -> str:
    """Named (x, y) series as lines with markers; `errors[name]` (one per point) draws error bars;
    `reference` draws a dashed horizontal line (e.g. 0.5 for win rates)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=SIZE_INCHES)
        drawn = 0
        for i, (name, points) in enumerate(series.items()):
            points = _finite(points)
            if not points:
                continue
            xs, ys = zip(*points)
            color = COLORS[i % len(COLORS)]
            marker = "o" if len(points) <= 20 else None
            if errors and name in errors:
                ax.errorbar(xs, ys, yerr=errors[name][: len(xs)], color=color, marker=marker, markersize=3,
                            linewidth=1.3, capsize=3, label=name)
            else:
                ax.plot(xs, ys, color=color, marker=marker, markersize=3, linewidth=1.3, label=name)
            drawn += 1
        if reference is not None:
            ax.axhline(reference, color="#888888", linestyle="--", linewidth=0.9, label=f"{reference:g}")
        if not drawn:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#777777")
        _finish(ax, title, xlabel, ylabel, has_legend=drawn > 0)
        return _to_svg(fig, plot_id, title)


def histogram(title: str, groups: dict[str, list[float]], plot_id: str, *, xlabel: str = "tokens",
              bins: int = 20) -> str:
    """Overlaid step histograms of several value lists on shared bins, each normalised to a fraction."""
    groups = {name: values for name, values in groups.items() if values}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=SIZE_INCHES)
        if groups:
            low = min(min(v) for v in groups.values())
            high = max(max(v) for v in groups.values())
            edges = [low + (high - low) * i / bins for i in range(bins + 1)] if high > low else [low - 0.5, low + 0.5]
            for i, (name, values) in enumerate(groups.items()):
                weights = [1.0 / len(values)] * len(values)
                ax.hist(values, bins=edges, weights=weights, histtype="step", linewidth=1.4,
                        color=COLORS[i % len(COLORS)], label=f"{name} (n={len(values)})")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#777777")
        _finish(ax, title, xlabel, "fraction", has_legend=bool(groups))
        return _to_svg(fig, plot_id, title)
