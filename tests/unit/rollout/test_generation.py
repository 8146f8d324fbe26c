"""Prompt sources, per-sample seeds, shard rows and host files (the functions the eval hook reuses)."""

import json

import pytest
import torch

from simpo_live.engine import Engine, EngineConfig
from simpo_live.rollout.generation import GenerationSettings, generate_shard, required_max_seq_len
from simpo_live.rollout.prompts import PromptError, load_prompts, synthetic_prompts, tokenize_prompt
from simpo_live.rollout.host_files import host_file_name, is_host_done, read_host_files, write_host_file
from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel
from simpo_live.seeds import derive_seed

def rows_of(*args, **kwargs) -> list[dict]:
    """generate_shard's rows in their host-file (JSON) form."""
    return [row.to_json() for row in generate_shard(*args, **kwargs)]


PROMPTS = ["hello world", "w1 w2 w3", "sort: w5 w4", "reverse: w9 w8 w7 w6", "w10", "hello w11 world"]


@pytest.fixture(scope="module")
def engine(word_tokenizer):
    torch.manual_seed(0)
    model = LlamaModel(ModelArgs(vocab_size=len(word_tokenizer), hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                 max_position_embeddings=256, eos_token_id=3))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.08)
    with Engine(model.eval(), word_tokenizer, EngineConfig(max_seqs=8)) as engine:
        yield engine


def test_sample_seed_depends_on_every_part_and_is_pinned():
    seeds = {derive_seed(0, s, p, j) for s in range(3) for p in range(4) for j in range(2)}
    assert len(seeds) == 24
    assert derive_seed(0, 0, 0, 0) == derive_seed(0, 0, 0, 0) == 1195769770526638388


def test_load_prompts_text_jsonl_and_errors(tmp_path):
    (tmp_path / "p.txt").write_text("first prompt\n\nsecond one\n")
    assert load_prompts(tmp_path / "p.txt") == ["first prompt", "second one"]
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "id": 2}\n')
    assert load_prompts(tmp_path / "p.jsonl") == ["a", "b"]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{"prompt": 3}\n')
    with pytest.raises(PromptError, match=r"bad.jsonl:2: \"prompt\" must be a string, got int"):
        load_prompts(tmp_path / "bad.jsonl")
    with pytest.raises(PromptError, match="not found"):
        load_prompts(tmp_path / "missing.txt")
    assert synthetic_prompts(3, "item {index}") == ["item 0", "item 1", "item 2"]


def test_tokenize_prompt_uses_the_chat_template_or_raw_text(word_tokenizer):
    chat = tokenize_prompt(word_tokenizer, "hello world")
    assert word_tokenizer.convert_ids_to_tokens(chat) == ["<s>", "<|user|>", "hello", "world", "<|end|>",
                                                          "<|assistant|>"]
    raw = tokenize_prompt(word_tokenizer, "hello world", use_chat_template=False)
    assert word_tokenizer.convert_ids_to_tokens(raw) == ["<s>", "hello", "world"]


def test_rows_do_not_depend_on_sharding(engine, tmp_path):
    settings = GenerationSettings(max_new_tokens=12, temperature=0.9, top_p=0.95, n=2, seed=4)
    whole = rows_of(engine, PROMPTS, 0, settings, step=50, rank=0, world_size=1, provenance={"model": "m"})
    parts = [rows_of(engine, PROMPTS[a:b], a, settings, step=50, rank=r, world_size=3)
             for r, (a, b) in enumerate([(0, 2), (2, 4), (4, 6)])]
    drop = ("process_index", "process_count", "model")
    assert [{k: v for k, v in row.items() if k not in drop} for part in parts for row in part] == \
           [{k: v for k, v in row.items() if k not in drop} for row in whole]
    row = whole[3]
    assert (row["global_prompt_index"], row["sample_index"], row["step"], row["model"]) == (1, 1, 50, "m")
    assert row["seed"] == derive_seed(4, 50, 1, 1)
    assert row["finish_reason"] in ("stop", "length") and row["temperature"] == 0.9
    # <s> <|user|> w1 w2 w3 <|end|> <|assistant|>
    assert 1 <= row["generated_token_count"] <= 12 and row["prompt_token_count"] == 7
    other_step = rows_of(engine, PROMPTS, 0, settings, step=100, rank=0, world_size=1)
    assert [r["generated_text"] for r in other_step] != [r["generated_text"] for r in whole]


def test_required_max_seq_len_is_longest_prompt_plus_new_tokens(word_tokenizer):
    settings = GenerationSettings(max_new_tokens=10)
    assert required_max_seq_len(word_tokenizer, PROMPTS, settings) == 9 + 10  # 5 words of prompt 3 + 4 template
    raw = GenerationSettings(max_new_tokens=10, use_chat_template=False)
    assert required_max_seq_len(word_tokenizer, PROMPTS, raw) == 6 + 10  # BOS + 5 words


def test_host_file_is_written_with_a_done_marker(engine, tmp_path):
    rows = [{"global_prompt_index": i, "sample_index": 0, "generated_text": f"t{i}"} for i in (2, 3)]
    assert not is_host_done(tmp_path, 1, 2)
    path = write_host_file(tmp_path, rows, rank=1, world_size=2)
    assert path.name == host_file_name(1, 2) == "host_0001_of_0002.jsonl"
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows
    assert is_host_done(tmp_path, 1, 2) and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="host 0 of 2 has not finished"):
        read_host_files(tmp_path, 2)
    write_host_file(tmp_path, rows[:0] + [{"global_prompt_index": 0, "sample_index": 0}], rank=0, world_size=2)
    assert [r["global_prompt_index"] for r in read_host_files(tmp_path, 2)] == [0, 2, 3]


def test_a_stop_token_ends_each_row_where_it_is_first_generated(engine, word_tokenizer):
    free = GenerationSettings(max_new_tokens=12, ignore_eos=True)
    unstopped = rows_of(engine, PROMPTS, 0, free, step=0, rank=0, world_size=1)
    words = [row["generated_text"].split() for row in unstopped]
    stop_word = words[0][2]
    stopped = rows_of(engine, PROMPTS, 0, GenerationSettings(max_new_tokens=12, ignore_eos=True,
                             stop_token_ids=(word_tokenizer.convert_tokens_to_ids(stop_word),)),
                             step=0, rank=0, world_size=1)
    for row, full in zip(stopped, words):
        cut = full.index(stop_word) + 1 if stop_word in full else len(full)
        assert row["generated_text"].split() == full[:cut] and row["generated_token_count"] == cut
        assert row["finish_reason"] == ("stop" if stop_word in full else "length")
    assert stopped[0]["generated_token_count"] <= 3 and stopped[0]["finish_reason"] == "stop"
    assert stopped[0]["stop_token_ids"] == (word_tokenizer.convert_tokens_to_ids(stop_word),)  # recorded in the row
