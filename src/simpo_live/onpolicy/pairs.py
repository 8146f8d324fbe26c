"""Scored samples -> preference pairs, one per prompt: the highest score against the lowest with another text.

Samples are grouped by global prompt index (never by their position in a list: SimPO #62 paired answers with the
wrong prompts). A prompt whose samples are all the same text, or all score the same, gives no pair and is
counted. Pure functions over rows; no files, engine or ranks here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from simpo_live.rollout.rows import GenerationRow

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


@dataclass(frozen=True)
class PairedSample:
    """One side of a pair: the sample it is, and what it scored."""

    text: str
    sample_index: int
    seed: int
    score: float
    token_count: int
    finish_reason: str

    @classmethod
    def of(cls, row: GenerationRow) -> PairedSample:
        return cls(row.generated_text, row.sample_index, row.seed, row.comparison_score, row.generated_token_count,
                   row.finish_reason)

    def to_json(self, side: str) -> dict[str, Any]:
        return {f"{side}_sample_index": self.sample_index, f"{side}_seed": self.seed, f"{side}_score": self.score,
                f"{side}_token_count": self.token_count, f"{side}_finish_reason": self.finish_reason}

    @classmethod
    def from_json(cls, row: dict[str, Any], side: str) -> PairedSample:
        return cls(row[side][-1]["content"], *(row[f"{side}_{name}"] for name in SIDE_FIELDS))


SIDE_FIELDS = ("sample_index", "seed", "score", "token_count", "finish_reason")


@dataclass(frozen=True)
class PairRow:
    """One training pair, a line of a round's host file in the UltraFeedback layout (`prompt`, `chosen` and
    `rejected` as messages), with the samples it came from, every score and seed of its prompt, and provenance."""

    prompt: str
    chosen: PairedSample
    rejected: PairedSample
    step: int
    global_prompt_index: int
    scores: list[float]
    seeds: list[int]
    provenance: dict[str, Any] = field(default_factory=dict)  # the round's: score source, host, sampling
    prompt_source: str | None = None  # where the round's prompt came from (a data row or a prompts-file line)

    def to_json(self) -> dict[str, Any]:
        row = {"prompt": self.prompt, "chosen": messages(self.prompt, self.chosen.text),
               "rejected": messages(self.prompt, self.rejected.text), "step": self.step,
               "global_prompt_index": self.global_prompt_index, **self.chosen.to_json("chosen"),
               **self.rejected.to_json("rejected"), "scores": self.scores, "seeds": self.seeds, **self.provenance}
        if self.prompt_source is not None:
            row["prompt_source"] = self.prompt_source
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> PairRow:
        known = {"prompt", "chosen", "rejected", "step", "global_prompt_index", "scores", "seeds", "prompt_source"}
        known |= {f"{side}_{name}" for side in ("chosen", "rejected") for name in SIDE_FIELDS}
        return cls(row["prompt"], PairedSample.from_json(row, "chosen"), PairedSample.from_json(row, "rejected"),
                   row["step"], row["global_prompt_index"], row["scores"], row["seeds"],
                   {k: v for k, v in row.items() if k not in known}, row.get("prompt_source"))


def pick_pair(samples: list[GenerationRow]) -> tuple[GenerationRow, GenerationRow] | str:
    """(chosen, rejected) of one prompt's samples (sorted by sample index), or the reason there is none.
    Ties go to the lowest sample index, so the choice does not depend on floating-point order of anything."""
    chosen = max(samples, key=lambda row: (row.comparison_score, -row.sample_index))
    others = [row for row in samples if row.generated_text != chosen.generated_text]
    if not others:
        return "identical"
    rejected = min(others, key=lambda row: (row.comparison_score, row.sample_index))
    if rejected.comparison_score == chosen.comparison_score:
        return "tied"
    return chosen, rejected


def build_pairs(rows: list[GenerationRow], provenance: dict[str, Any] | None = None
                ) -> tuple[list[PairRow], PairCounts]:
    """Pair scored rows in global prompt order, and the counts of prompts used, paired and dropped (by reason)."""
    by_prompt: dict[int, list[GenerationRow]] = defaultdict(list)
    for row in rows:
        by_prompt[row.global_prompt_index].append(row)
    pairs, counts = [], PairCounts(prompts=len(by_prompt))
    for index in sorted(by_prompt):
        samples = sorted(by_prompt[index], key=lambda row: row.sample_index)
        picked = pick_pair(samples)
        if isinstance(picked, str):
            setattr(counts, picked, getattr(counts, picked) + 1)
            continue
        chosen, rejected = picked
        pairs.append(PairRow(chosen.prompt, PairedSample.of(chosen), PairedSample.of(rejected), chosen.step, index,
                             [sample.comparison_score for sample in samples], [sample.seed for sample in samples],
                             dict(provenance or {})))
    counts.pairs = len(pairs)
    return pairs, counts
