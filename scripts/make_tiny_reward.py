"""Build the bundled tiny reward model for the reverse-words task (the embedded default's quality signal).

A Bradley-Terry reward model: `LlamaForSequenceClassification` with one output, its backbone initialised from the
bundled policy (`assets/tiny-reverse`, which already reads the task) and trained on fresh preference pairs from
`simpo_live.tasks.reverse_words` (correct reversal chosen over a corruption; never the bundled pairs, so the eval's
held-out prompts stay unseen). Loss per pair: -log sigmoid(r(chosen) - r(rejected)). Then measured: pairwise
accuracy on the bundled preference file and, on the base policy's greedy answers, how well the score separates
right from wrong answers. Not used at run time.

    python scripts/make_tiny_reward.py       # writes src/simpo_live/assets/tiny-reverse-rm/
    python scripts/make_tiny_reward.py --init src/simpo_live/assets/tiny-reverse-rm --steps 800 --lr 5e-5 \
        --negatives-from runs/default/checkpoints/step_000100 runs/default/checkpoints/step_000200
                                             # then harder negatives: wrong answers of SimPO-trained policies
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, LlamaForSequenceClassification

from simpo_live.config.schema import ASSETS, BUNDLED_DATA, BUNDLED_MODEL
from simpo_live.rollout.reward import encode_conversation  # the reward model's input, as the eval builds it
from simpo_live.tasks import reverse_words as task

OUT_DIR = ASSETS / "tiny-reverse-rm"
SEEDS = {"init": 11, "pairs": 12, "order": 13}


def training_pairs(num_pairs: int, seed: int, policies: list[Path]) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected): half with wrong answers the policies sampled at temperature 1 as rejected (split
    evenly between them), the rest with a corruption of every kind, the original order (the base policy's usual
    mistake) weighted up."""
    rng = random.Random(seed)
    prompts_words = [task.sample_words(rng) for _ in range(num_pairs)]
    half = num_pairs // 2
    sampled: list[str] = []
    for k, policy in enumerate(policies):
        part = prompts_words[k * half // len(policies): (k + 1) * half // len(policies)]
        sampled += policy_answers([task.make_prompt(w) for w in part], temperature=1.0, seed=seed, model_dir=policy)
    pairs = []
    for i, words in enumerate(prompts_words):
        prompt, correct = task.make_prompt(words), task.correct_answer(words)
        wrong = sampled[i] if i < half else ""
        if not wrong or task.score({"prompt": prompt, "generated_text": wrong}) == 1.0:
            kind = "original_order" if rng.random() < 0.4 else None
            wrong = task.corrupt_answer(words, rng, kind)
        pairs.append((prompt, correct, wrong))
    rng.shuffle(pairs)
    return pairs


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)  # (B, S), right-padded
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, (ids != pad_id).long()


def rewards(model, sequences: list[list[int]], pad_id: int) -> torch.Tensor:
    ids, mask = pad_batch(sequences, pad_id)
    return model(input_ids=ids, attention_mask=mask).logits[:, 0]  # (B,)


def pairwise_accuracy(model, tokenizer, pairs: list[tuple[str, str, str]], batch: int = 128) -> float:
    correct = 0
    with torch.no_grad():
        for s in range(0, len(pairs), batch):
            chunk = pairs[s: s + batch]
            chosen = rewards(model, [encode_conversation(tokenizer, p, c) for p, c, _ in chunk], tokenizer.pad_token_id)
            rejected = rewards(model, [encode_conversation(tokenizer, p, r) for p, _, r in chunk], tokenizer.pad_token_id)
            correct += int((chosen > rejected).sum())
    return correct / len(pairs)


def bundled_pairs() -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in BUNDLED_DATA.read_text().splitlines() if line]
    return [(r["prompt"], r["chosen"][-1]["content"], r["rejected"][-1]["content"]) for r in rows]


def policy_answers(prompts: list[str], temperature: float = 0.0, seed: int = 0, model_dir: Path = BUNDLED_MODEL
                   ) -> list[str]:
    """A policy's answers through the project's engine (the bundled one's greedy answers: what the baseline eval
    scores)."""
    from simpo_live.engine import Engine, EngineConfig
    from simpo_live.rollout.generation import GenerationSettings, generate_shard
    from simpo_live.model.checkpoint import load_model

    model = load_model(model_dir, dtype=torch.float32, device=torch.device("cpu"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with Engine(model, tokenizer, EngineConfig(max_seqs=256, max_seq_len=64)) as engine:
        settings = GenerationSettings(max_new_tokens=24, temperature=temperature, seed=seed)
        rows = generate_shard(engine, prompts, 0, settings, 0, 0, 1)
    return [row.generated_text for row in rows]


def separation_on_policy_answers(model, tokenizer, num_prompts: int, seed: int, policy: Path = BUNDLED_MODEL
                                 ) -> dict[str, float]:
    """AUC of the reward for telling a policy's right greedy answers from its wrong ones (0.5 = chance)."""
    rng = random.Random(seed)
    prompts = [task.make_prompt(task.sample_words(rng)) for _ in range(num_prompts)]
    answers = policy_answers(prompts, model_dir=policy)
    right = [task.score({"prompt": p, "generated_text": a}) == 1.0 for p, a in zip(prompts, answers)]
    with torch.no_grad():
        scores = rewards(model, [encode_conversation(tokenizer, p, a) for p, a in zip(prompts, answers)], tokenizer.pad_token_id)
    good = [float(s) for s, r in zip(scores, right) if r]
    bad = [float(s) for s, r in zip(scores, right) if not r]
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return {"policy_answers": num_prompts, "policy_accuracy": len(good) / num_prompts,
            "auc_right_vs_wrong": wins / max(len(good) * len(bad), 1)}


def train(args) -> None:
    torch.manual_seed(SEEDS["init"])
    tokenizer = AutoTokenizer.from_pretrained(BUNDLED_MODEL)
    model = LlamaForSequenceClassification.from_pretrained(args.init, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    policies = [BUNDLED_MODEL, *args.negatives_from]
    pairs = training_pairs(args.pairs, SEEDS["pairs"] + len(policies), policies)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * (1 - s / args.steps))
    order = random.Random(SEEDS["order"])
    began = time.perf_counter()
    model.train()
    for step in range(args.steps):
        chunk = order.sample(pairs, args.batch)
        chosen = rewards(model, [encode_conversation(tokenizer, p, c) for p, c, _ in chunk], tokenizer.pad_token_id)
        rejected = rewards(model, [encode_conversation(tokenizer, p, r) for p, _, r in chunk], tokenizer.pad_token_id)
        loss = -F.logsigmoid(chosen - rejected).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 25 == 0 or step == args.steps - 1:
            accuracy = (chosen > rejected).float().mean().item()
            print(f"step {step} loss {loss.item():.4f} batch acc {accuracy:.2f} "
                  f"{time.perf_counter() - began:.0f}s", flush=True)
    model.eval()
    seconds = time.perf_counter() - began
    measured = {"train_steps": args.steps, "batch_pairs": args.batch, "train_seconds": round(seconds),
                "bundled_pair_accuracy": pairwise_accuracy(model, tokenizer, bundled_pairs()),
                "init": str(args.init), "negatives_from": [str(p) for p in policies],
                **separation_on_policy_answers(model, tokenizer, 200, seed=99)}
    for policy in args.negatives_from:
        measured[f"auc_right_vs_wrong_{policy.name}"] = separation_on_policy_answers(
            model, tokenizer, 200, seed=99, policy=policy)["auc_right_vs_wrong"]
    print(json.dumps(measured))
    model.to(torch.bfloat16).save_pretrained(OUT_DIR)
    tokenizer.save_pretrained(OUT_DIR)
    (OUT_DIR / "measured.json").write_text(json.dumps(measured, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64, help="pairs per update")
    parser.add_argument("--pairs", type=int, default=20000, help="fresh training pairs drawn from the task")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", type=Path, default=BUNDLED_MODEL,
                        help="backbone to start from: the bundled policy, or a reward model to train further")
    parser.add_argument("--negatives-from", type=Path, nargs="*", default=[],
                        help="more policies (e.g. SimPO checkpoints) whose wrong samples become rejected answers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train(args)


if __name__ == "__main__":
    main()
