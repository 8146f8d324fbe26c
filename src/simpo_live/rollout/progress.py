"""The leader's generation progress during a rollout: samples done and tokens/s, as a bar or as log lines."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class GenerationProgress:
    """A tqdm bar under the training bar on a terminal; a line every `every_sec` seconds in a log file."""

    def __init__(self, label: str, step: int, total_samples: int, writer, every_sec: float = 10.0):
        self.label = label
        self.step = step
        self.writer = writer
        self.every_sec = every_sec
        self.began = self.last = time.perf_counter()
        self.tokens = 0
        self.finished = 0
        self.total = total_samples
        self.bar = (tqdm(total=total_samples, desc=f"{label} @ {step}", unit="sample", leave=False, position=1,
                         dynamic_ncols=True) if sys.stderr.isatty() else None)

    def update(self, result) -> None:
        self.tokens += result.num_generated_tokens
        self.finished += len(result.finished)
        now = time.perf_counter()
        rate = self.tokens / max(now - self.began, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix({"tok/s": f"{rate:.0f}"}, refresh=False)
            self.bar.update(len(result.finished))
        elif now - self.last >= self.every_sec or self.finished == self.total:
            self.last = now
            self.writer.write(f"{self.label} step {self.step}: {self.finished}/{self.total} samples, {self.tokens} tokens, "
                              f"{rate:.0f} tok/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
