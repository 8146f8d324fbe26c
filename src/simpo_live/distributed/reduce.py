"""Element-wise sums of small metric vectors over all ranks (the default process group)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """`values` summed over every rank in float64 (a collective: every rank calls it); as given in one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    # NCCL reduces only device tensors; torch.cuda.set_device has already picked this rank's device.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()
