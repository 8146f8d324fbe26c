"""The leader's generation progress during an eval: tokens and tokens/s, on a bar or as log lines."""

from __future__ import annotations

import time


class GenerationProgress:
    def __init__(self, step: int, writer, every_sec: float = 10.0):
        self.step = step
        self.writer = writer
        self.every_sec = every_sec
        self.began = self.last = time.perf_counter()
        self.tokens = 0
        self.finished = 0

    def update(self, result) -> None:
        self.tokens += result.num_generated_tokens
        self.finished += len(result.finished)
        now = time.perf_counter()
        if now - self.last >= self.every_sec:
            self.last = now
            rate = self.tokens / (now - self.began)
            self.writer.write(f"eval step {self.step}: {self.finished} samples done, {self.tokens} tokens, "
                              f"{rate:.0f} tok/s")
