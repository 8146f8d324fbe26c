"""Scored samples -> preference pairs, one per prompt: the highest score against the lowest with another text.

Samples are grouped by global prompt index (never by their position in a list: SimPO #62 paired answers with the
wrong prompts). A prompt whose samples are all the same text, or all score the same, gives no pair and is
counted. Pure functions over rows; no files, engine or ranks here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from simpo_live.rollout.spec import comparison_score

DROP_REASONS = ("identical", "tied")


@dataclass
class PairCounts:
    prompts: int = 0
    pairs: int = 0
    identical: int = 0
    """Prompts whose samples are all the same text (whatever their scores: a batched reward model can leave
    different low bits on the same text)."""
    tied: int = 0
    """Prompts whose samples differ but all score the same."""

    def add(self, other: PairCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


def messages(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def pick_pair(samples: list[dict[str, Any]]) -> tuple[dict, dict] | str:
    """(chosen, rejected) of one prompt's samples (sorted by sample index), or the reason there is none.
    Ties go to the lowest sample index, so the choice does not depend on floating-point order of anything."""
    chosen = max(samples, key=lambda row: (comparison_score(row), -row["sample_index"]))
    others = [row for row in samples if row["generated_text"] != chosen["generated_text"]]
    if not others:
        return "identical"
    rejected = min(others, key=lambda row: (comparison_score(row), row["sample_index"]))
    if comparison_score(rejected) == comparison_score(chosen):
        return "tied"
    return chosen, rejected


def pair_row(chosen: dict[str, Any], rejected: dict[str, Any], samples: list[dict[str, Any]],
             provenance: dict[str, Any]) -> dict[str, Any]:
    """One training pair in the UltraFeedback layout, with the samples it came from and every score."""
    prompt = chosen["prompt"]
    row = {"prompt": prompt, "chosen": messages(prompt, chosen["generated_text"]),
           "rejected": messages(prompt, rejected["generated_text"]),
           "step": chosen["step"], "global_prompt_index": chosen["global_prompt_index"]}
    for side, sample in (("chosen", chosen), ("rejected", rejected)):
        row.update({f"{side}_sample_index": sample["sample_index"], f"{side}_seed": sample["seed"],
                    f"{side}_score": comparison_score(sample), f"{side}_token_count": sample["generated_token_count"],
                    f"{side}_finish_reason": sample["finish_reason"]})
    row["scores"] = [comparison_score(sample) for sample in samples]
    row["seeds"] = [sample["seed"] for sample in samples]
    return {**row, **provenance}


def build_pairs(rows: list[dict[str, Any]], provenance: dict[str, Any] | None = None
                ) -> tuple[list[dict[str, Any]], PairCounts]:
    """Pair rows in global prompt order, and the counts of prompts used, paired and dropped (by reason).
    Each input row needs global_prompt_index, sample_index, prompt, generated_text, a score or reward, seed, step,
    generated_token_count and finish_reason (as `rollout.generation.generate_shard` rows, scored)."""
    by_prompt: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_prompt[row["global_prompt_index"]].append(row)
    pairs, counts = [], PairCounts(prompts=len(by_prompt))
    for index in sorted(by_prompt):
        samples = sorted(by_prompt[index], key=lambda row: row["sample_index"])
        picked = pick_pair(samples)
        if isinstance(picked, str):
            setattr(counts, picked, getattr(counts, picked) + 1)
            continue
        pairs.append(pair_row(*picked, samples, provenance or {}))
    counts.pairs = len(pairs)
    return pairs, counts
