"""A round's files: a host counts only once its done marker exists, every host's pairs are read in global prompt
order, a prompt paired on two hosts is an error, and the pairs tokenise like offline data (over-long ones dropped)."""

import json

import pytest

from simpo_live.onpolicy.files import read_pair_rows, tokenize_pair_rows
from generation_rows import make_row
from simpo_live.onpolicy.pairs import PairRow, build_pairs
from simpo_live.rollout.host_files import is_host_done, read_sidecar, write_host_file


def pair(index: int, chosen: str = "w2 w1", rejected: str = "w1") -> dict:
    """One pair's host-file line, as build_pairs makes it."""
    rows = [make_row(global_prompt_index=index, sample_index=i, prompt=f"reverse: w{index}", generated_text=text,
                     score=score) for i, (text, score) in enumerate([(chosen, 1.0), (rejected, 0.0)])]
    return build_pairs(rows)[0][0].to_json()


def test_hosts_are_read_in_global_order_once_done(tmp_path):
    write_host_file(tmp_path, [pair(3), pair(4)], 1, 2, sidecar={"pairs": 2})
    assert read_sidecar(tmp_path, 1, 2) == {"pairs": 2} and not is_host_done(tmp_path, 0, 2)
    with pytest.raises(FileNotFoundError, match="host 0 of 2 has not finished"):
        read_pair_rows(tmp_path, 2)
    write_host_file(tmp_path, [pair(0), pair(2)], 0, 2, sidecar={"pairs": 2})
    assert [row.global_prompt_index for row in read_pair_rows(tmp_path, 2)] == [0, 2, 3, 4]
    (tmp_path / "host_0001_of_0002.jsonl").write_text(json.dumps(pair(2)) + "\n")
    with pytest.raises(ValueError, match="prompt 2 is paired twice"):
        read_pair_rows(tmp_path, 2)


def test_pairs_tokenise_as_offline_data_and_over_long_ones_are_counted(tmp_path, word_tokenizer):
    rows = [pair(1), pair(2, chosen=" ".join(["w5"] * 40))]
    pairs, dropped = tokenize_pair_rows([PairRow.from_json(row) for row in rows], tmp_path, word_tokenizer, max_seq_len=24, max_prompt_len=16)
    assert dropped == 1 and len(pairs) == 1
    text = word_tokenizer.apply_chat_template(rows[0]["chosen"], tokenize=False)
    assert pairs[0].prompt_ids + pairs[0].chosen_ids == word_tokenizer(text, add_special_tokens=False).input_ids
    assert pairs[0].source.endswith(":prompt 1")


def test_a_reward_model_score_source_scores_every_sample(task_reward_model):
    import torch

    from simpo_live.rollout.reward import inspect_reward_model
    from simpo_live.rollout.spec import Scoring

    scoring = Scoring(scorer=None, reward_model=inspect_reward_model(str(task_reward_model)),
                      reward_model_dtype="float32", reward_batch_tokens=64)
    rows = [make_row(prompt="reverse: ba be", generated_text=text, sample_index=i)
            for i, text in enumerate(["be ba", "ba be", "be"])]
    scored = scoring.score(rows, torch.device("cpu"))
    scores = [row.comparison_score for row in scored]
    assert scores == [row.reward.value for row in scored] and len(set(scores)) == 3
