"""The per-prompt table: each prompt's generations across eval steps, each cell's score coloured by win or loss
against the baseline eval's generation of the same prompt and sample, with a search box and a "got worse" filter
(rows whose last eval lost to the baseline; `report.html#worse` opens with it on)."""

from __future__ import annotations

import html
from typing import Any

from simpo_live.evals.winrate import Sample, preference
from simpo_live.report.collect import MAX_TEXT_CHARS, RunData
from simpo_live.rollout.rows import GenerationRow

OUTCOME = {1.0: "win", 0.5: "tie", 0.0: "loss"}

FILTER_JS = """
function filterRows() {
  var q = document.getElementById('search').value.toLowerCase();
  var worseOnly = document.getElementById('worse-only').checked;
  var shown = 0;
  document.querySelectorAll('#generations tbody tr').forEach(function (tr) {
    var hit = tr.textContent.toLowerCase().indexOf(q) >= 0 && (!worseOnly || tr.dataset.worse === '1');
    tr.style.display = hit ? '' : 'none'; shown += hit;
  });
  document.getElementById('shown').textContent = shown;
}
document.getElementById('search').addEventListener('input', filterRows);
document.getElementById('worse-only').addEventListener('change', filterRows);
if (location.hash === '#worse') document.getElementById('worse-only').checked = true;  // a link to the filtered view
filterRows();
"""


def as_sample(row: dict[str, Any]) -> Sample | None:
    """The comparison view of a row; texts are digested whole (the report keeps only their start)."""
    score = GenerationRow.from_json(row).comparison_score
    if score is None:
        return None
    return Sample(score, row["generated_token_count"], row.get("text_digest", ""))


def outcome_against(row: dict[str, Any] | None, baseline: dict[str, Any] | None) -> str | None:
    if row is None or baseline is None or row is baseline:
        return None
    this, reference = as_sample(row), as_sample(baseline)
    if this is None or reference is None:
        return None
    return OUTCOME[preference(this, reference)]


def generation_cell(row: dict | None, outcome: str | None) -> str:
    if row is None:
        return "<td class='muted'>-</td>"
    reason = row["finish_reason"]
    score = GenerationRow.from_json(row).comparison_score
    label = "reward" if "reward" in row else "score"
    scored = f" <span class='score'>{label} {score:.3g}</span>" if score is not None else ""
    versus = f" <span class='versus'>{outcome} vs baseline</span>" if outcome else ""
    cut = f" (first {MAX_TEXT_CHARS} chars)" if row.get("truncated_for_report") else ""
    css = f" class='{outcome}'" if outcome else ""
    return (f"<td{css} data-outcome='{outcome or ''}'><div class='gen'>{html.escape(row['generated_text'])}</div>"
            f"<div class='{reason}'>{reason}, {row['generated_token_count']} tok{scored}{versus}{cut}</div></td>")


def generations_section(data: RunData) -> str:
    steps = sorted({step for by_step in data.generations.values() for step in by_step})
    if not steps:
        return ""
    baseline_step = steps[0]
    header = "<tr><th>prompt</th>" + "".join(
        f"<th data-step='{s}'>{'baseline (step ' + str(s) + ')' if s == baseline_step else f'step {s}'}</th>"
        for s in steps) + "</tr>"
    rows = []
    for (index, sample), by_step in sorted(data.generations.items()):
        baseline = by_step.get(baseline_step)
        outcomes = [outcome_against(by_step.get(s), baseline) for s in steps]
        last = next((o for o in reversed(outcomes) if o is not None), None)
        label = f"#{index}" + (f" sample {sample}" if sample else "")
        rows.append(f"<tr data-prompt='{index}' data-worse='{int(last == 'loss')}'><td><b>{label}</b>"
                    f"<div class='gen'>{html.escape(data.prompts[index])}</div></td>"
                    + "".join(generation_cell(by_step.get(s), o) for s, o in zip(steps, outcomes)) + "</tr>")
    note = ""
    if data.num_prompts_total > len({index for index, _ in data.generations}):
        note = (f" (the first {len({index for index, _ in data.generations})} of {data.num_prompts_total} prompts; "
                "all rows are in the JSONL files)")
    return (f"<h2>Generations across eval steps</h2><p>Cells are coloured by their score against the baseline's "
            f"generation of the same prompt and sample: <span class='win'>win</span> <span class='loss'>loss</span> "
            f"<span class='tie'>tie</span>.</p><p><input id='search' placeholder='search prompts and generations'> "
            f"<label><input type='checkbox' id='worse-only'> only prompts that got worse (last eval lost to the "
            f"baseline)</label> <span id='shown'>?</span> rows shown{note}</p>"
            f"<table id='generations'><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"
            f"<script>{FILTER_JS}</script>")

