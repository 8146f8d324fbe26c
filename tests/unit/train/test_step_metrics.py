"""StepMetrics: the typed result of an update, and the tracker row it becomes."""

import torch

from simpo_live.train.loss import simpo_loss
from simpo_live.train.metrics import PairStats, StepMetrics
from simpo_live.train.progress import TrainProgress


def stats_of_two_pairs() -> PairStats:
    stats = PairStats()
    chosen, rejected = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.5])
    stats.add(simpo_loss(chosen, rejected, beta=2.0, gamma_beta_ratio=0.5), chosen, rejected, num_tokens=30)
    return stats


def test_pair_means_and_the_tracker_row():
    means = stats_of_two_pairs().pair_means()
    assert (means.margin, means.reward_accuracy, means.margin_accuracy) == (0.25, 0.5, 0.5)  # margins 1.0, -0.5
    metrics = StepMetrics(pairs=means, grad_norm=1.5, lr=1e-4, num_tokens=30.0, tokens_per_sec=300.0,
                          step_time_sec=0.1)
    row = metrics.as_log()
    assert row["train/margin"] == 0.25 and row["train/grad_norm"] == 1.5 and row["train/num_tokens"] == 30.0
    # Optional entries appear only when they hold something.
    assert not {"train/update_skipped", "train/skipped_updates", "train/peak_memory_gib"} & row.keys()
    skipped = StepMetrics(pairs=means, grad_norm=float("nan"), lr=1e-4, num_tokens=30.0, tokens_per_sec=300.0,
                          step_time_sec=0.1, update_skipped=True, skipped_updates=2).as_log()
    assert skipped["train/update_skipped"] == 1.0 and skipped["train/skipped_updates"] == 2.0


def test_sums_over_ranks_are_the_values_in_one_process():
    stats = stats_of_two_pairs()
    assert stats.all_reduce() == stats


def test_progress_lines_read_the_typed_metrics(capsys):
    metrics = StepMetrics(pairs=stats_of_two_pairs().pair_means(), grad_norm=1.0, lr=1e-4, num_tokens=30.0,
                          tokens_per_sec=1234.4, step_time_sec=0.1)
    progress = TrainProgress(total=1, initial=0, enabled=True)
    progress.bar = None  # the plain-line form a log file gets
    progress.update(1, metrics)
    line = capsys.readouterr().err
    assert line.startswith("step 1/1 loss=") and "margin=0.250 acc=0.50 tok/s=1234 " in line
