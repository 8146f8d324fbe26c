"""The HTML report of a tiny run, rendered by a real headless Chromium: plots and the per-prompt table are there."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.report.html import write_report
from simpo_live.training_run import run_training

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    return path


@pytest.fixture(scope="module")
def report_path(task_assets, task_reward_model, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("report") / "run"
    cfg = load_config(overrides=quick_run_overrides(task_assets, run_dir) + [
        "--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[2,4]",
        "--inference_eval.eval_before_training=true", "--inference_eval.max_new_tokens=10",
        "--inference_eval.synthetic_prompt_count=5", "--inference_eval.synthetic_prompt_template=reverse: ba {index}",
        "--inference_eval.scorer=simpo_live.tasks.reverse_words:score", "--inference_eval.temperature=1.0",
        f"--inference_eval.reward_model={task_reward_model}"])
    assert run_training(cfg) == 0
    return run_dir / "report.html"


def test_training_writes_the_report(report_path):
    assert report_path.is_file()  # written at the end of training
    assert write_report(report_path.parent) == report_path


def rendered_dom(browser: str, url: str, profile_dir: Path) -> str:
    return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--virtual-time-budget=3000",
                           "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


def test_report_leads_with_the_quality_signal(report_path):
    page = report_path.read_text()
    headline = page[page.index("id='headline'"): page.index("</table>")]
    for label in ("run directory", "model", "data", "validation reward accuracy", "win rate vs baseline",
                  "LC win rate vs baseline", "wins / ties / losses", "reward mean"):
        assert f"<th>{label}</th>" in headline
    assert page.index("id='headline'") < page.index("Is the model getting better?") < page.index("<h2>Training")
    assert re.search(r"<b>\d\.\d{3} ± \d\.\d{3}</b> at step 4 \(vs step 0, reward model, 5 pairs\)", headline)


def test_report_renders_in_chromium_with_plots_and_generations(report_path, tmp_path):
    browser = chromium()
    dom = rendered_dom(browser, report_path.as_uri(), tmp_path / "profile")
    assert "<html" in dom
    plots = re.findall(r'<div class="plot" data-plot="([^"]+)"', dom)
    assert {"quality-win-rate", "quality-win-rate-previous", "quality-reward"} <= set(plots)
    assert {"train-0", "train-1", "train-2", "train-3", "eval-0"} <= set(plots)
    assert {"lengths-0", "lengths-2", "lengths-4"} <= set(plots)
    assert dom.count("<svg") >= len(plots) and "<text" not in dom.split("<h2>", 1)[0]  # matplotlib text stays text
    steps = re.findall(r"<th data-step=\"(\d+)\"", dom)
    assert steps == ["0", "2", "4"]
    table = dom[dom.index('id="generations"'):]
    assert len(re.findall(r"<tr data-prompt=", table)) == 5
    assert 'id="shown">5<' in dom  # the search script ran over the rows
    cells = re.findall(r'<td class="(win|loss|tie)" data-outcome="\1">', table)
    assert len(cells) == 5 * 2  # steps 2 and 4 against the baseline, one cell per prompt each
    worse = len(re.findall(r'<tr data-prompt="\d+" data-worse="1">', table))
    filtered = rendered_dom(browser, report_path.as_uri() + "#worse", tmp_path / "profile2")
    assert f'id="shown">{worse}<' in filtered  # the "got worse" filter keeps exactly those rows
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile3'}", f"--screenshot={shot}",
                    "--window-size=1400,2400", report_path.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
