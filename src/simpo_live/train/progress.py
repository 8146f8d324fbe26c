"""The leader's training progress: a tqdm bar on a terminal, plain periodic lines in a log file."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from simpo_live.train.metrics import StepMetrics


class TrainProgress:
    def __init__(self, total: int, initial: int, enabled: bool):
        self.enabled = enabled
        self.total = total
        self.is_tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.initial = initial
        self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True) \
            if enabled and self.is_tty else None
        self.line_every = max(1, total // 20)

    def update(self, step: int, metrics: StepMetrics) -> None:
        if not self.enabled:
            return
        summary = {
            "loss": f"{metrics.loss:.4f}",
            "margin": f"{metrics.pairs.margin:.3f}",
            "acc": f"{metrics.pairs.reward_accuracy:.2f}",
            "tok/s": f"{metrics.tokens_per_sec:.0f}",
        }
        if self.bar is not None:
            self.bar.set_postfix(summary, refresh=False)
            self.bar.update(1)
        elif step % self.line_every == 0 or step == self.total:
            done = step - self.initial
            eta = (time.perf_counter() - self.start) / max(done, 1) * (self.total - step)
            fields = " ".join(f"{k}={v}" for k, v in summary.items())
            print(f"step {step}/{self.total} {fields} eta={eta:.0f}s", file=sys.stderr, flush=True)

    def write(self, message: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else lambda m: print(m, file=sys.stderr, flush=True))(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
