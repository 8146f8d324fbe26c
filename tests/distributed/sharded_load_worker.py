"""Worker for test_sharded_loading.py, run under torchrun: load MODEL_DIR sharded (FSDP2, meta device), then
write what this rank holds and the replica it gathers, for the parent to compare with a one-process load; a
checkpoint it cannot read is written as this rank's error instead.

usage: sharded_load_worker.py MODEL_DIR OUT_DIR DTYPE
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from simpo_live.distributed.env import init_process_group, rank_info
from simpo_live.distributed.loading import load_for_training
from simpo_live.distributed.parallel import inference_replica
from simpo_live.model.checkpoint import CheckpointError


def main(model_dir: str, out_dir: str, dtype: str) -> None:
    rank, device = rank_info(), torch.device("cpu")
    init_process_group(rank, device, timeout_sec=60, force=True)
    out = Path(out_dir)
    try:
        raw_model, model = load_for_training(model_dir, "fsdp", rank, device, dtype, activation_checkpointing=False)
    except CheckpointError as e:
        (out / f"rank{rank.rank}.json").write_text(json.dumps({"error": str(e)}))
        torch.distributed.destroy_process_group()
        return
    local = {name: tensor.to_local() for name, tensor in model.state_dict().items()}
    for replica_dtype in (torch.float32, torch.bfloat16):
        with inference_replica(raw_model, replica_dtype) as replica:
            gathered = {name: t.detach().clone() for name, t in replica.state_dict().items()
                        if not (raw_model.args.tie_word_embeddings and name == "lm_head.weight")}
        if rank.is_leader:
            save_file(gathered, str(out / f"replica_{str(replica_dtype).removeprefix('torch.')}.safetensors"))
    (out / f"rank{rank.rank}.json").write_text(json.dumps({
        "local_numel": {name: t.numel() for name, t in local.items()},
        "local_dtypes": sorted({str(t.dtype) for t in local.values()}),
    }))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
