"""What every round of the run needs, fixed before step 1: the prompt pool and which prompts each round takes, its
rollout (sampling, engine, scoring), data limits, where the files go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simpo_live.data.batches import global_batch_indices
from simpo_live.rollout.spec import RolloutSpec
from simpo_live.seeds import labelled_seed


def sampling_seed(run_seed: int) -> int:
    """The rounds' sampling seed root when onpolicy.seed is unset: derived from the run seed, distinct from the
    eval's (which uses the run seed itself), so a round never replays an eval's sampling noise."""
    return labelled_seed("onpolicy-sampling", run_seed)


@dataclass(frozen=True)
class RoundPlan:
    pool: list[tuple[str, str]]
    """(prompt, where it comes from) of every candidate prompt; rounds take them in seeded order."""
    prompts_per_round: int
    schedule: list[int]
    rollout: RolloutSpec
    output_dir: Path
    seed: int
    score_source: str
    max_seq_len: int
    max_prompt_len: int
    config_digest: str

    def prompts_for(self, step: int) -> list[tuple[str, str]]:
        """The (prompt, source) list of the round at `step`; its positions are the round's global prompt indices."""
        indices = round_prompt_indices(len(self.pool), self.prompts_per_round, self.schedule.index(step), self.seed)
        return [self.pool[i] for i in indices]


def round_prompt_indices(num_prompts: int, per_round: int, round_number: int, seed: int) -> list[int]:
    """Round k takes items [k*N, (k+1)*N) of the pool's seeded epoch permutations: every prompt once before any
    repeats, a pure function of the round (the offline batches' order function, over prompts)."""
    return global_batch_indices(num_prompts, per_round, round_number, seed)
