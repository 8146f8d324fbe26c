"""Reward-model scoring: batched scores equal transformers' one row at a time; bad directories are refused."""

import gc
import json
import weakref

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from generation_rows import make_row
from reward_models import make_reward_model_dir
from simpo_live.config import ConfigError
from simpo_live.rollout import reward as reward_module
from simpo_live.rollout.reward import RewardScorer, add_rewards, inspect_reward_model, length_buckets

CPU = torch.device("cpu")
ANSWERS = ["w1", "w2 w3 w4 w5 w6 w7", "hello world", "", "w9 w9 w9 w9 w9 w9 w9 w9 w9 w9 w9 w9", "world"]


def rows():
    return [make_row(global_prompt_index=i, sample_index=0, prompt=f"reverse: w{i} w{i + 1}", generated_text=answer,
                     finish_reason="length" if i == 4 else "stop")
            for i, answer in enumerate(ANSWERS)]


@pytest.fixture
def reward_dir(tmp_path, word_tokenizer):
    return make_reward_model_dir(tmp_path / "rm", word_tokenizer, vocab_size=128)


def reference_rewards(directory, rows):
    """transformers on each conversation alone, unpadded: the reward model as its authors run it."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32).eval()
    values = []
    for row in rows:
        messages = [{"role": "user", "content": row.prompt}, {"role": "assistant", "content": row.generated_text}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            values.append(model(input_ids=ids).logits[0, 0].item())
    return values


@pytest.mark.parametrize("batch_tokens", [1, 40, 10_000])
def test_batched_rewards_equal_transformers_one_row_at_a_time(reward_dir, batch_tokens):
    info = inspect_reward_model(str(reward_dir))
    with RewardScorer(info, torch.float32, CPU, batch_tokens) as scorer:
        got = scorer.score_rows(rows())
    assert got == pytest.approx(reference_rewards(reward_dir, rows()), abs=1e-5)
    assert len(set(round(v, 4) for v in got)) == len(got)  # a random model still tells the answers apart


def test_a_model_without_pad_id_is_batched_on_a_token_none_of_the_rows_has(tmp_path, word_tokenizer):
    directory = make_reward_model_dir(tmp_path / "rm", word_tokenizer, vocab_size=128, pad_token_id=None)
    info = inspect_reward_model(str(directory))
    with RewardScorer(info, torch.float32, CPU, 10_000) as scorer:
        got = scorer.score_rows(rows())
    assert got == pytest.approx(reference_rewards(directory, rows()), abs=1e-5)


def test_rows_get_reward_flag_and_provenance_and_the_model_is_freed(reward_dir, monkeypatch):
    made = []
    original = RewardScorer.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(weakref.ref(self.model))

    monkeypatch.setattr(reward_module.RewardScorer, "__init__", remember)
    info = inspect_reward_model(str(reward_dir))
    scored = [row.to_json() for row in add_rewards(rows(), info, torch.float32, CPU, 64)]
    gc.collect()
    assert made and made[0]() is None  # no reference to the reward model survives scoring
    assert [r["reward_truncated"] for r in scored] == [False, False, False, False, True, False]
    config_digest = info.config_digest
    assert all(r["reward_model"] == str(reward_dir) and r["reward_model_config_digest"] == config_digest
               for r in scored)
    assert len(config_digest) == 12 and info.num_parameters == sum(
        p.numel() for p in AutoModelForSequenceClassification.from_pretrained(reward_dir).parameters())


def test_length_buckets_sort_by_length_and_respect_the_budget():
    lengths = [5, 30, 7, 7, 100, 6]
    batches = length_buckets(lengths, 24)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert [lengths[i] for b in batches for i in b] == sorted(lengths)
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 24


def test_directories_that_are_no_reward_model_are_refused(tmp_path, word_tokenizer):
    with pytest.raises(ConfigError, match="no config.json"):
        inspect_reward_model(str(tmp_path / "missing"))
    two = make_reward_model_dir(tmp_path / "two", word_tokenizer, vocab_size=128, num_labels=2)
    with pytest.raises(ConfigError, match="has 2 outputs"):
        inspect_reward_model(str(two))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        inspect_reward_model(str(tmp_path / "broken"))


def test_a_conversation_over_the_reward_models_context_names_the_prompt(tmp_path, word_tokenizer):
    directory = make_reward_model_dir(tmp_path / "rm", word_tokenizer, vocab_size=128, max_position_embeddings=16)
    info = inspect_reward_model(str(directory))
    with RewardScorer(info, torch.float32, CPU, 1000) as scorer, pytest.raises(ConfigError, match="prompt 4 sample 0"):
        scorer.score_rows(rows())


def test_the_bundled_reward_model_is_one_output_and_knows_the_task():
    info = inspect_reward_model("bundled:tiny-reverse-rm")
    assert info.path.is_dir() and info.num_parameters > 0
    measured = json.loads((info.path / "measured.json").read_text())
    assert measured["bundled_pair_accuracy"] > 0.7


def test_preflight_refuses_prompts_that_cannot_fit_the_reward_models_context(tmp_path, word_tokenizer):
    from simpo_live.rollout.reward import check_reward_context

    directory = make_reward_model_dir(tmp_path / "rm", word_tokenizer, vocab_size=128, max_position_embeddings=32)
    info = inspect_reward_model(str(directory))
    check_reward_context(info, ["hello", "w1 w2 w3"], max_new_tokens=8)
    with pytest.raises(ConfigError, match="prompt 1 is .* max_new_tokens 30 .* context of 32"):
        check_reward_context(info, ["hello", "w1 w2 w3 w4 w5 w6"], max_new_tokens=30)
