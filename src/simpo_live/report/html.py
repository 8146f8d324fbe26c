"""`simpo-live report RUN_DIR`: one self-contained HTML file (inline matplotlib SVG and a few lines of JS, no network).

First the answer to "is the model getting better?" (headline, win rates, reward); then training curves; per eval
step the generated-length distribution against the data's chosen and rejected lengths, stop reasons, repetition
and tokens/s per host; and each prompt's generations across eval steps side by side (generations.py). Reads only
the run directory.
"""

from __future__ import annotations

import html
from pathlib import Path

from simpo_live.atomic import atomic_write
from simpo_live.report.charts import histogram, line_chart
from simpo_live.report.collect import RunData, collect_run
from simpo_live.report.generations import generations_section
from simpo_live.report.headline import headline_section, quality_section
from simpo_live.report.rounds import rounds_section

MAX_REPORT_PROMPTS = 256

TRAINING_PLOTS = [
    ("loss", ["train/loss", "val/loss"]),
    ("margin (avg logp chosen - rejected)", ["train/margin", "val/margin"]),
    ("reward accuracy (chosen > rejected)", ["train/reward_accuracy", "val/reward_accuracy"]),
    ("margin accuracy (margin > gamma/beta)", ["train/margin_accuracy", "val/margin_accuracy"]),
    ("avg logp", ["train/chosen_logp", "train/rejected_logp", "val/chosen_logp", "val/rejected_logp"]),
    ("learning rate", ["train/lr"]),
    ("grad norm", ["train/grad_norm"]),
    ("train tokens/s (non-padding)", ["train/tokens_per_sec"]),
    ("padding share of computed tokens", ["train/padding_share"]),
    ("MFU (model FLOPs/s / device peak)", ["train/mfu"]),
]

EVAL_PLOTS = [
    ("generated length (tokens)", ["length_p10", "length_p50", "length_p90"]),
    ("health", ["frac_stopped_by_length", "loop_rate", "distinct_2"]),
    ("generation tokens/s", ["tokens_per_second"]),
]

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{margin-top:28px}
.plots{display:flex;flex-wrap:wrap;gap:10px}.plot{border:1px solid #ddd;background:#fff;padding:4px}
.plot svg{display:block;max-width:100%;height:auto}
table{border-collapse:collapse;margin-top:8px}td,th{border:1px solid #ddd;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#f5f5f5;position:sticky;top:0}
#headline th{position:static;width:220px}#headline td{min-width:420px}
.gen{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px;max-width:420px}
.stop{color:#2ca02c}.length{color:#d62728}.muted{color:#777}#search{width:360px;padding:4px}
td.win,span.win{background:#e3f4e1}td.loss,span.loss{background:#fbe3e3}span.tie{background:#eee}
.score{font-weight:600}.versus{color:#555}
"""


def _series(rows: list[dict], key: str) -> list[tuple[float, float]]:
    return [(row["step"], float(row[key])) for row in rows
            if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)]


def training_section(data: RunData) -> str:
    plots = []
    for i, (title, keys) in enumerate(TRAINING_PLOTS):
        series = {key: _series(data.metrics, key) for key in keys}
        if any(series.values()):
            plots.append(line_chart(title, series, f"train-{i}"))
    return "<h2>Training</h2><div class='plots'>" + "".join(plots) + "</div>"


def eval_section(data: RunData) -> str:
    if not data.summaries:
        return "<h2>Inference evals</h2><p class='muted'>No eval steps in this run.</p>"
    steps = sorted(data.summaries)
    plots = []
    for i, (title, keys) in enumerate(EVAL_PLOTS):
        series = {key: [(s, float(data.summaries[s]["metrics"][key])) for s in steps
                        if key in data.summaries[s]["metrics"]] for key in keys}
        if any(series.values()):
            plots.append(line_chart(title, series, f"eval-{i}"))
    for step in steps:
        summary = data.summaries[step]
        groups = {f"generated @ {step}": [n for h in summary["hosts"] for n in h["lengths"]]}
        groups.update({f"data {k}": v for k, v in (summary.get("reference_lengths") or {}).items()})
        plots.append(histogram(f"length distribution, step {step}", groups, f"lengths-{step}"))
    header = ("<tr><th>step</th><th>samples</th><th>reward</th><th>win rate</th><th>LC win rate</th><th>scorer mean</th>"
              "<th>length p50 / p90</th>"
              "<th>stop / length</th><th>loop rate</th><th>distinct-2</th><th>tokens/s per host</th>"
              "<th>eval time (s)</th></tr>")
    body = []
    for step in steps:
        m = data.summaries[step]["metrics"]
        per_host = ", ".join(f"{h['total_tokens'] / h['generation_time_sec']:.0f}" if h["generation_time_sec"] else "-"
                             for h in data.summaries[step]["hosts"])
        score = f"{m['scorer_mean']:.3f}" if "scorer_mean" in m else "-"
        quality = "".join(f"<td>{m[k]:.3f}" + (f" ± {m[k + '_se']:.3f}" if k + "_se" in m else "") + "</td>"
                          if k in m else "<td>-</td>" for k in ("reward_mean", "win_rate", "lc_win_rate"))
        stops = 1 - m["frac_stopped_by_length"]
        body.append(f"<tr><td>{step}</td><td>{m['num_samples']}</td>{quality}<td>{score}</td>"
                    f"<td>{m['length_p50']:.0f} / {m['length_p90']:.0f}</td>"
                    f"<td>{stops:.0%} / {m['frac_stopped_by_length']:.0%}</td><td>{m['loop_rate']:.1%}</td>"
                    f"<td>{m['distinct_2']:.3f}</td><td>{per_host}</td>"
                    f"<td>{m.get('total_callback_time_sec', 0):.1f}</td></tr>")
    return ("<h2>Inference evals</h2><div class='plots'>" + "".join(plots) + "</div>"
            f"<table id='eval-steps'><thead>{header}</thead><tbody>{''.join(body)}</tbody></table>")


def render_report(data: RunData) -> str:
    last = data.metrics[-1]["step"] if data.metrics else 0
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>simpo-live report: {html.escape(data.run_dir.name)}"
            f"</title><style>{STYLE}</style></head><body><h1>simpo-live run <code>{html.escape(str(data.run_dir))}"
            f"</code></h1><p class='muted'>last logged step {last}; {len(data.summaries)} eval steps</p>"
            + headline_section(data) + quality_section(data) + training_section(data)
            + rounds_section(data.run_dir) + eval_section(data)
            + generations_section(data) + "</body></html>")


def write_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html atomically; returns its path."""
    run_dir = Path(run_dir)
    page = render_report(collect_run(run_dir, MAX_REPORT_PROMPTS))
    path = run_dir / "report.html"
    with atomic_write(path) as f:
        f.write(page)
    return path
