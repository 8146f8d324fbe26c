"""The report's on-policy rounds: one row per committed round (`onpolicy/round_*/round.json`), nothing otherwise."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [("prompts", "prompts", "{:.0f}"), ("samples", "samples", "{:.0f}"), ("pairs", "training_pairs", "{:.0f}"),
           ("dropped tied", "dropped_tied", "{:.0f}"), ("dropped identical", "dropped_identical", "{:.0f}"),
           ("dropped over-long", "dropped_overlong", "{:.0f}"), ("score gap", "score_gap_mean", "{:.3f}"),
           ("chosen / rejected tokens", ("chosen_tokens_mean", "rejected_tokens_mean"), "{:.1f} / {:.1f}"),
           ("generate / score (s)", ("generate_time_sec", "score_time_sec"), "{:.1f} / {:.1f}")]


def read_rounds(run_dir: Path) -> list[dict]:
    root = run_dir / "onpolicy"
    paths = sorted(root.glob("round_*/round.json")) if root.is_dir() else []
    return [json.loads(path.read_text()) for path in paths]


def cell(metrics: dict, keys: str | tuple[str, ...], form: str) -> str:
    keys = (keys,) if isinstance(keys, str) else keys
    return form.format(*(metrics[k] for k in keys)) if all(k in metrics for k in keys) else "-"


def rounds_section(run_dir: Path) -> str:
    rounds = read_rounds(run_dir)
    if not rounds:
        return ""
    source = rounds[0].get("score_source", "")
    header = "<tr><th>step</th>" + "".join(f"<th>{title}</th>" for title, _, _ in COLUMNS) + "</tr>"
    body = "".join("<tr><td>{}</td>{}</tr>".format(r["step"], "".join(
        f"<td>{cell(r['metrics'], keys, form)}</td>" for _, keys, form in COLUMNS)) for r in rounds)
    return (f"<h2>On-policy rounds</h2><p class='muted'>scored by {source}; each round's pairs are the training "
            f"pairs until the next round</p><table id='onpolicy-rounds'><thead>{header}</thead>"
            f"<tbody>{body}</tbody></table>")
