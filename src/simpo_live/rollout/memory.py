"""Memory readings for eval metrics: CUDA allocator figures on GPU, resident set size on CPU."""

from __future__ import annotations

import torch


def process_rss_gib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def memory_reading(device: torch.device) -> dict[str, float]:
    """Named memory figures in GiB for `device` (empty when nothing is measurable)."""
    if device.type == "cuda":
        return {"allocated_gib": torch.cuda.memory_allocated(device) / 2**30,
                "reserved_gib": torch.cuda.memory_reserved(device) / 2**30}
    rss = process_rss_gib()
    return {"rss_gib": rss} if rss is not None else {}
