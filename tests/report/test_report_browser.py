"""The HTML report of a tiny run, rendered by a real headless Chromium: plots and the per-prompt table are there."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.report.html import write_report
from simpo_live.train.run import run_training

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    return path


@pytest.fixture(scope="module")
def report_path(task_assets, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("report") / "run"
    cfg = load_config(overrides=quick_run_overrides(task_assets, run_dir) + [
        "--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[2,4]",
        "--inference_eval.eval_before_training=true", "--inference_eval.max_new_tokens=10",
        "--inference_eval.synthetic_prompt_count=5", "--inference_eval.synthetic_prompt_template=reverse: ba {index}",
        "--inference_eval.scorer=simpo_live.tasks.reverse_words:score"])
    assert run_training(cfg) == 0
    return run_dir / "report.html"


def test_training_writes_the_report(report_path):
    assert report_path.is_file()  # written at the end of training
    assert write_report(report_path.parent) == report_path


def test_report_renders_in_chromium_with_plots_and_generations(report_path, tmp_path):
    browser = chromium()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, *profile, "--virtual-time-budget=3000", "--dump-dom",
                          report_path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<html" in dom
    plots = re.findall(r'<svg class="plot" data-plot="([^"]+)"', dom)
    assert {"train-0", "train-1", "train-2", "train-3", "eval-0"} <= set(plots)
    assert {"lengths-0", "lengths-2", "lengths-4"} <= set(plots)
    steps = re.findall(r"<th data-step=\"(\d+)\"", dom)
    assert steps == ["0", "2", "4"]
    table = dom[dom.index('id="generations"'):]
    assert len(re.findall(r"<tr data-prompt=", table)) == 5
    assert 'id="shown">5<' in dom  # the search script ran over the rows
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, *profile, f"--screenshot={shot}", "--window-size=1400,2400",
                    report_path.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
