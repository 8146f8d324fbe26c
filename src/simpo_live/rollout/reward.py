"""Score generated rows with a local Hugging Face reward model (sequence classification with one output).

Each rank scores its own rows after generation: the reward model's own chat template over (prompt, generated answer),
rows sorted by length into batches under a token budget, then the model is freed before training resumes. A row
stopped by max_new_tokens is scored as it is and flagged (`reward_truncated`). Not here: which rows a rank owns,
and comparing scores across evals (winrate.py).
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from simpo_live.config.load import ConfigError
from simpo_live.config.schema import ASSETS
from simpo_live.model.checkpoint import DTYPES
from simpo_live.rollout.rows import GenerationRow, Reward

BUNDLED_PREFIX = "bundled:"


def resolve_reward_model_path(spec: str) -> Path:
    """A directory, or `bundled:NAME` for a model shipped in simpo_live/assets (machine-independent in config.yaml)."""
    if spec.startswith(BUNDLED_PREFIX):
        return ASSETS / spec.removeprefix(BUNDLED_PREFIX)
    return Path(spec).expanduser()


def reward_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


@dataclass(frozen=True)
class RewardModelInfo:
    """What the pre-flight and every row's provenance need, read from the directory without loading weights."""

    path: Path
    config_digest: str
    num_parameters: int
    hidden_size: int
    max_positions: int | None

    def provenance(self) -> dict[str, str]:
        return {"reward_model": str(self.path), "reward_model_config_digest": self.config_digest}


def inspect_reward_model(spec: str, key: str = "inference_eval.reward_model") -> RewardModelInfo:
    """Check the directory looks like a one-output sequence-classification model; ConfigError naming the problem."""
    path = resolve_reward_model_path(spec)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError([f"{key}: {path} is not a Hugging Face model directory (no config.json)"])
    raw = config_file.read_bytes()
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError([f"{key}: {config_file} is not valid JSON ({e})"]) from e
    num_labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    if num_labels != 1:
        raise ConfigError([f"{key}: {path} has {num_labels} outputs; a reward model has exactly one "
                           "(AutoModelForSequenceClassification with num_labels=1)"])
    shards = sorted(path.glob("*.safetensors"))
    if not shards:
        raise ConfigError([f"{key}: {path} has no *.safetensors weights"])
    text_config = config.get("text_config") or config
    return RewardModelInfo(path=path, config_digest=hashlib.sha256(raw).hexdigest()[:12],
                           num_parameters=count_parameters(shards), hidden_size=int(text_config.get("hidden_size", 0)),
                           max_positions=text_config.get("max_position_embeddings"))


def count_parameters(shards: list[Path]) -> int:
    from safetensors import safe_open

    total = 0
    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:  # reads the header only
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return total


def check_reward_context(info: RewardModelInfo, prompts: list[str], max_new_tokens: int,
                         section: str = "inference_eval") -> None:
    """Before step 1: the longest prompt in the reward model's template plus max_new_tokens must fit its context
    (answers are counted in the policy's tokens, so a reward model with another tokenizer is checked roughly)."""
    if info.max_positions is None or not prompts:
        return
    tokenizer = load_reward_tokenizer(info)
    lengths = [len(encode_conversation(tokenizer, p, "")) for p in prompts]
    longest = max(range(len(prompts)), key=lambda i: lengths[i])
    if lengths[longest] + max_new_tokens > info.max_positions:
        raise ConfigError([f"{section}.reward_model: prompt {longest} is {lengths[longest]} tokens in the reward "
                           f"model's template; with max_new_tokens {max_new_tokens} it can exceed the reward model's "
                           f"context of {info.max_positions}: lower {section}.max_new_tokens"])


def load_reward_tokenizer(info: RewardModelInfo):
    """The reward model's tokenizer; without a chat template it could not score (prompt, answer) conversations."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(info.path, local_files_only=True)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError([f"inference_eval.reward_model: the tokenizer in {info.path} has no chat template; "
                           "a reward model scores (prompt, answer) conversations in its own template"])
    return tokenizer


def encode_conversation(tokenizer, prompt: str, answer: str) -> list[int]:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return tokenizer(text, add_special_tokens=False).input_ids  # the template holds BOS where it wants one


def reward_model_bytes(info: RewardModelInfo, dtype: torch.dtype, batch_tokens: int) -> int:
    """Weights in the scoring dtype plus one batch's hidden states (a few activations of hidden_size per token)."""
    element = torch.empty((), dtype=dtype).element_size()
    return info.num_parameters * element + 8 * batch_tokens * info.hidden_size * element


@contextmanager
def quiet_transformers():
    """No weight-loading bar or load report in the middle of a training log."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


class RewardScorer:
    """A loaded reward model; use as a context manager so it is freed on exit."""

    def __init__(self, info: RewardModelInfo, dtype: torch.dtype, device: torch.device, batch_tokens: int):
        from transformers import AutoModelForSequenceClassification

        self.info, self.device, self.batch_tokens = info, device, batch_tokens
        self.tokenizer = load_reward_tokenizer(info)
        with quiet_transformers():
            self.model = AutoModelForSequenceClassification.from_pretrained(
                info.path, dtype=dtype, local_files_only=True).to(device).eval()

    def __enter__(self) -> RewardScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def score_rows(self, rows: list[GenerationRow]) -> list[float]:
        """One reward per row, in row order."""
        encoded = [encode_conversation(self.tokenizer, row.prompt, row.generated_text) for row in rows]
        self.check_lengths(rows, encoded)
        scores = [0.0] * len(rows)
        for batch in length_buckets([len(ids) for ids in encoded], self.batch_tokens):
            for index, value in zip(batch, self.score_batch([encoded[i] for i in batch])):
                scores[index] = value
        return scores

    def check_lengths(self, rows: list[GenerationRow], encoded: list[list[int]]) -> None:
        limit = self.info.max_positions
        for row, ids in zip(rows, encoded):
            if limit is not None and len(ids) > limit:
                raise ConfigError([f"inference_eval.reward_model: prompt {row.global_prompt_index} sample "
                                   f"{row.sample_index} with its answer is {len(ids)} tokens in the reward model's "
                                   f"template, over its context of {limit}: lower inference_eval.max_new_tokens"])

    @torch.no_grad()
    def score_batch(self, sequences: list[list[int]]) -> list[float]:
        # HF pools the rightmost token that is not the pad id. Right padding keeps that token where it is unpadded;
        # a model without a pad id gets one that none of these rows contains, so its last token is the one pooled.
        config = self.model.config
        pad_id = config.pad_token_id
        if pad_id is None:
            used = {t for s in sequences for t in s}
            config.pad_token_id = pad_id = next(t for t in range(len(used) + 1) if t not in used)
        longest = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)  # (B, S), right-padded
        mask = torch.zeros_like(ids)
        for i, s in enumerate(sequences):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits  # (B, 1)
        return logits[:, 0].float().cpu().tolist()


def length_buckets(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Row indices sorted by length, cut into batches whose rows x longest row stays within batch_tokens
    (a row longer than the budget goes alone)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    for index in order:
        if batches and (len(batches[-1]) + 1) * lengths[index] <= batch_tokens:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def add_rewards(rows: list[GenerationRow], info: RewardModelInfo, dtype: torch.dtype, device: torch.device,
                batch_tokens: int) -> list[GenerationRow]:
    """The rows with their reward (value, truncation flag, provenance); the model is freed before returning."""
    if not rows:
        return []
    with RewardScorer(info, dtype, device, batch_tokens) as scorer:
        scores = scorer.score_rows(rows)
    provenance = info.provenance()
    return [replace(row, reward=Reward(value, row.finish_reason == "length", provenance["reward_model"],
                                       provenance["reward_model_config_digest"]))
            for row, value in zip(rows, scores)]
