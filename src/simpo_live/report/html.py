"""`simpo-live report RUN_DIR`: one self-contained HTML file (inline SVG and a few lines of JS, no network).

Training curves; per eval step the generated-length distribution against the data's chosen and rejected
lengths, stop reasons, repetition, scorer mean and tokens/s per host; and each prompt's generations across
eval steps side by side, from the baseline on, with a search box. Reads only the run directory.
"""

from __future__ import annotations

import html
from pathlib import Path

from simpo_live.atomic import atomic_write
from simpo_live.report.collect import MAX_TEXT_CHARS, RunData, collect_run
from simpo_live.report.svg import histogram, line_chart

MAX_REPORT_PROMPTS = 256

TRAINING_PLOTS = [
    ("loss", ["train/loss", "val/loss"]),
    ("margin (avg logp chosen - rejected)", ["train/margin", "val/margin"]),
    ("reward accuracy (chosen > rejected)", ["train/reward_accuracy", "val/reward_accuracy"]),
    ("margin accuracy (margin > gamma/beta)", ["train/margin_accuracy", "val/margin_accuracy"]),
    ("avg logp", ["train/chosen_logp", "train/rejected_logp", "val/chosen_logp", "val/rejected_logp"]),
    ("learning rate", ["train/lr"]),
    ("grad norm", ["train/grad_norm"]),
    ("train tokens/s", ["train/tokens_per_sec"]),
]

EVAL_PLOTS = [
    ("scorer mean", ["scorer_mean"]),
    ("generated length", ["length_p10", "length_p50", "length_p90"]),
    ("health", ["frac_stopped_by_length", "loop_rate", "distinct_2"]),
    ("generation tokens/s", ["tokens_per_second"]),
]

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{margin-top:28px}
.plots{display:flex;flex-wrap:wrap;gap:10px}.plot{border:1px solid #ddd;background:#fff}
.ptitle{font-size:12px;font-weight:600}.tick{font-size:10px;fill:#555}.legend{font-size:10px}
.grid{stroke:#eee}table{border-collapse:collapse;margin-top:8px}td,th{border:1px solid #ddd;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#f5f5f5;position:sticky;top:0}
.gen{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px;max-width:420px}
.stop{color:#2ca02c}.length{color:#d62728}.muted{color:#777}#search{width:360px;padding:4px}
"""

SEARCH_JS = """
function filterRows(q) {
  var shown = 0;
  document.querySelectorAll('#generations tbody tr').forEach(function (tr) {
    var hit = tr.textContent.toLowerCase().indexOf(q) >= 0; tr.style.display = hit ? '' : 'none'; shown += hit;
  });
  document.getElementById('shown').textContent = shown;
}
document.getElementById('search').addEventListener('input', function (e) { filterRows(e.target.value.toLowerCase()); });
filterRows('');
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
    header = ("<tr><th>step</th><th>samples</th><th>scorer mean</th><th>length p50 / p90</th>"
              "<th>stop / length</th><th>loop rate</th><th>distinct-2</th><th>tokens/s per host</th>"
              "<th>eval time (s)</th></tr>")
    body = []
    for step in steps:
        m = data.summaries[step]["metrics"]
        per_host = ", ".join(f"{h['total_tokens'] / h['generation_time_sec']:.0f}" if h["generation_time_sec"] else "-"
                             for h in data.summaries[step]["hosts"])
        score = f"{m['scorer_mean']:.3f}" if "scorer_mean" in m else "-"
        stops = 1 - m["frac_stopped_by_length"]
        body.append(f"<tr><td>{step}</td><td>{m['num_samples']}</td><td>{score}</td>"
                    f"<td>{m['length_p50']:.0f} / {m['length_p90']:.0f}</td>"
                    f"<td>{stops:.0%} / {m['frac_stopped_by_length']:.0%}</td><td>{m['loop_rate']:.1%}</td>"
                    f"<td>{m['distinct_2']:.3f}</td><td>{per_host}</td>"
                    f"<td>{m.get('total_callback_time_sec', 0):.1f}</td></tr>")
    return ("<h2>Inference evals</h2><div class='plots'>" + "".join(plots) + "</div>"
            f"<table id='eval-steps'><thead>{header}</thead><tbody>{''.join(body)}</tbody></table>")


def generation_cell(row: dict | None) -> str:
    if row is None:
        return "<td class='muted'>-</td>"
    reason = row["finish_reason"]
    score = f" score {row['score']:g}" if "score" in row else ""
    cut = f" (first {MAX_TEXT_CHARS} chars)" if row.get("truncated_for_report") else ""
    return (f"<td><div class='gen'>{html.escape(row['generated_text'])}</div>"
            f"<div class='{reason}'>{reason}, {row['generated_token_count']} tok{score}{cut}</div></td>")


def generations_section(data: RunData) -> str:
    steps = sorted({step for by_step in data.generations.values() for step in by_step})
    if not steps:
        return ""
    header = "<tr><th>prompt</th>" + "".join(
        f"<th data-step='{s}'>{'baseline (step 0)' if s == 0 else f'step {s}'}</th>" for s in steps) + "</tr>"
    rows = []
    for (index, sample), by_step in sorted(data.generations.items()):
        label = f"#{index}" + (f" sample {sample}" if sample else "")
        rows.append(f"<tr data-prompt='{index}'><td><b>{label}</b><div class='gen'>{html.escape(data.prompts[index])}"
                    "</div></td>" + "".join(generation_cell(by_step.get(s)) for s in steps) + "</tr>")
    note = ""
    if data.num_prompts_total > MAX_REPORT_PROMPTS:
        note = f" (the first {MAX_REPORT_PROMPTS} of {data.num_prompts_total} prompts; all rows are in the JSONL files)"
    return (f"<h2>Generations across eval steps</h2><p><input id='search' placeholder='search prompts and "
            f"generations'> <span id='shown'>?</span> rows shown{note}</p>"
            f"<table id='generations'><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"
            f"<script>{SEARCH_JS}</script>")


def render_report(data: RunData) -> str:
    last = data.metrics[-1]["step"] if data.metrics else 0
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>simpo-live report: {html.escape(data.run_dir.name)}"
            f"</title><style>{STYLE}</style></head><body><h1>simpo-live run <code>{html.escape(str(data.run_dir))}"
            f"</code></h1><p class='muted'>last logged step {last}; {len(data.summaries)} eval steps</p>"
            + training_section(data) + eval_section(data) + generations_section(data) + "</body></html>")


def write_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html atomically; returns its path."""
    run_dir = Path(run_dir)
    page = render_report(collect_run(run_dir, MAX_REPORT_PROMPTS))
    path = run_dir / "report.html"
    with atomic_write(path) as f:
        f.write(page)
    return path
