"""The report's first answer: is the model getting better? A headline block and the quality curves.

The headline names the run (model, data, steps, run directory) and gives the last validation accuracy and the last
eval's win rate and length-controlled win rate against the baseline, with their standard errors. The curves show
reward and both win rates per eval step with error bars.
"""

from __future__ import annotations

import html
from typing import Any

from simpo_live.report.charts import line_chart
from simpo_live.report.collect import RunData


def _last_metric(rows: list[dict[str, Any]], key: str) -> tuple[int, float] | None:
    found = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    return found[-1] if found else None


def _with_error(metrics: dict[str, float], key: str) -> str:
    if key not in metrics:
        return "-"
    error = metrics.get(f"{key}_se")
    return f"{metrics[key]:.3f}" + (f" ± {error:.3f}" if error is not None else "")


def headline_section(data: RunData) -> str:
    config = data.config
    model = (config.get("model") or {}).get("path", "?")
    train_path = (config.get("data") or {}).get("train_path", "?")
    planned = (config.get("trainer") or {}).get("num_train_steps")
    done = max((row["step"] for row in data.metrics), default=0)
    validation = _last_metric(data.metrics, "val/reward_accuracy")
    items = [("run directory", f"<code>{html.escape(str(data.run_dir.resolve()))}</code>"),
             ("model", f"<code>{html.escape(str(model))}</code>"),
             ("data", f"<code>{html.escape(str(train_path))}</code>"),
             ("steps", f"{done}" + (f" of {planned}" if planned else "")),
             ("validation reward accuracy", f"{validation[1]:.3f} (step {validation[0]})" if validation else "-")]
    latest = data.latest_summary_with("win_rate")
    if latest is not None:
        step, summary = latest
        metrics = summary["metrics"]
        baseline = (summary.get("compared_against") or {}).get("baseline_step")
        source = {"reward_model": "reward model", "scorer": "scorer"}.get(summary.get("score_source"), "scores")
        items += [("win rate vs baseline", f"<b>{_with_error(metrics, 'win_rate')}</b> at step {step} "
                                           f"(vs step {baseline}, {source}, {metrics['num_comparisons']:.0f} pairs)"),
                  ("LC win rate vs baseline", f"<b>{_with_error(metrics, 'lc_win_rate')}</b>" if "lc_win_rate"
                   in metrics else "- <span class='muted'>(under 10 comparisons: too few to fit the GLM)</span>"),
                  ("wins / ties / losses", f"{metrics['wins']:.0f} / {metrics['ties']:.0f} / {metrics['losses']:.0f}")]
        if "reward_mean" in metrics:
            items.append(("reward mean", _with_error(metrics, "reward_mean")))
    else:
        items.append(("win rate", "<span class='muted'>no scored evals (set inference_eval.reward_model or "
                                  "inference_eval.scorer)</span>"))
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td>{value}</td></tr>" for name, value in items)
    return f"<table id='headline'>{rows}</table>"


def _points(data: RunData, key: str) -> tuple[list[tuple[float, float]], list[float]]:
    steps = [s for s in data.eval_steps() if key in data.summaries[s]["metrics"]]
    metrics = [data.summaries[s]["metrics"] for s in steps]
    return [(s, float(m[key])) for s, m in zip(steps, metrics)], [float(m.get(f"{key}_se", 0.0)) for m in metrics]


def quality_section(data: RunData) -> str:
    """Win rates and reward per eval step; empty when no eval was scored."""
    charts = []
    win, win_se = _points(data, "win_rate")
    lc, lc_se = _points(data, "lc_win_rate")
    previous, previous_se = _points(data, "win_rate_vs_previous")
    if win:
        charts.append(line_chart("win rate vs the baseline eval", {"win rate": win, "LC win rate": lc},
                                 "quality-win-rate", errors={"win rate": win_se, "LC win rate": lc_se},
                                 ylabel="P(this step wins)", reference=0.5))
    if previous:
        charts.append(line_chart("win rate vs the previous eval", {"win rate vs previous": previous},
                                 "quality-win-rate-previous", errors={"win rate vs previous": previous_se},
                                 ylabel="P(this step wins)", reference=0.5))
    reward, reward_se = _points(data, "reward_mean")
    stopped, _ = _points(data, "reward_mean_stopped")
    if reward:
        charts.append(line_chart("reward (mean ± s.e.)", {"all rows": reward, "stopped naturally": stopped},
                                 "quality-reward", errors={"all rows": reward_se}, ylabel="reward"))
    scorer, _ = _points(data, "scorer_mean")
    if scorer:
        charts.append(line_chart("scorer mean", {"scorer mean": scorer}, "quality-scorer", ylabel="score"))
    if not charts:
        return ""
    return "<h2>Is the model getting better?</h2><div class='plots'>" + "".join(charts) + "</div>"
