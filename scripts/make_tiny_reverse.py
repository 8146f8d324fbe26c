"""Build the bundled tiny model and preference data for the reverse-words task (the embedded default).

Writes the word tokenizer + a 4-layer "tiny Llama" trained by plain supervised next-token training on chat
conversations: first on correct answers only (so the reversal circuit forms), then on answers that are right
only part of the time (mostly right for short lists, mostly the original order for long ones), so greedy
answers are often wrong and SimPO has something to fix. Then measures the saved model: greedy task accuracy
on held-out prompts and pairwise accuracy (average log-prob of chosen > rejected) on held-out preference
pairs. Not used at run time.

    python scripts/make_tiny_reverse.py      # writes src/simpo_live/assets/{tiny-reverse,data/reverse_prefs.jsonl}
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import GenerationConfig

from simpo_live.config.schema import BUNDLED_DATA, BUNDLED_MODEL
from simpo_live.data.word_tokenizer import END_OF_TURN, SPECIAL_TOKENS, build_word_tokenizer
from simpo_live.model import LlamaModel, ModelArgs
from simpo_live.model.checkpoint import load_model, save_model
from simpo_live.tasks import reverse_words as task

VOCAB_SIZE = 4096
# Probability that a supervised example's answer is correct, by list length; wrong answers are mostly the
# original order (COPY_SHARE), which makes the base model's greedy answer wrong on long lists.
P_CORRECT = {3: 0.8, 4: 0.6, 5: 0.45, 6: 0.3, 7: 0.2, 8: 0.1}
COPY_SHARE = 0.8
SEEDS = {"sft": 1, "bundled_data": 2, "eval_prompts": 3, "eval_pairs": 4}


def build_tokenizer():
    words = [task.PREFIX, *task.VOCABULARY]
    num_fillers = VOCAB_SIZE - len(SPECIAL_TOKENS) - len(words)
    tokenizer = build_word_tokenizer(words + [f"<unused_{i}>" for i in range(num_fillers)])
    if len(tokenizer) != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, expected {VOCAB_SIZE}")
    return tokenizer


def build_model(tokenizer, seed: int) -> LlamaModel:
    args = ModelArgs(
        vocab_size=VOCAB_SIZE, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=4096,
        rms_norm_eps=1e-5, tie_word_embeddings=True, model_type="llama",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaModel(args)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                continue
            param.normal_(0.0, 0.02)
    return model


def sft_answer(words: list[str], rng: random.Random, clean: bool) -> str:
    if clean or rng.random() < P_CORRECT[len(words)]:
        return task.correct_answer(words)
    if rng.random() < COPY_SHARE:
        return task.corrupt_answer(words, rng, "original_order")
    return task.corrupt_answer(words, rng, rng.choice(task.CORRUPTIONS[1:]))


def encode(tokenizer, prompt: str, answer: str | None) -> tuple[list[int], int]:
    """Chat-template token ids of (prompt, answer) and the prompt length (with the generation prompt)."""
    user = [{"role": "user", "content": prompt}]
    prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    if answer is None:
        return prompt_ids, len(prompt_ids)
    full_text = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": answer}], tokenize=False)
    return tokenizer(full_text, add_special_tokens=False)["input_ids"], len(prompt_ids)


def make_batch(examples: list[tuple[list[int], int]], pad_id: int):
    """Right-padded ids (B, S) and a mask (B, S) of target positions holding answer tokens."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    answer_mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, (token_ids, prompt_len) in enumerate(examples):
        ids[row, : len(token_ids)] = torch.tensor(token_ids)
        answer_mask[row, prompt_len: len(token_ids)] = True
    return ids, answer_mask


def token_logps(model: LlamaModel, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, t] | ids[:, :t]) at each t >= 1, shape (B, S-1)."""
    logits = model(ids[:, :-1]).float()  # (B, S-1, V)
    return torch.gather(F.log_softmax(logits, -1), 2, ids[:, 1:, None]).squeeze(2)


def train(model, tokenizer, steps: int, clean_steps: int, batch_size: int, lr: float, warmup: int,
          log_every: int) -> float:
    """AdamW on the answer tokens; the first `clean_steps` updates see only correct answers (the reversal
    circuit forms much faster on clean data), the rest the mixed answers of `sft_answer`."""
    rng = random.Random(SEEDS["sft"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    start = time.time()
    for step in range(steps):
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr * max(scale, 0.02)
        examples = []
        for _ in range(batch_size):
            words = task.sample_words(rng)
            examples.append(encode(tokenizer, task.make_prompt(words), sft_answer(words, rng, step < clean_steps)))
        ids, answer_mask = make_batch(examples, tokenizer.pad_token_id)
        logps = token_logps(model, ids)
        loss = -(logps * answer_mask[:, 1:]).sum() / answer_mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - start:7.1f}s", flush=True)
    return time.time() - start


@torch.no_grad()
def greedy_answer(model, tokenizer, prompt: str, max_new_tokens: int = 16) -> str:
    """Greedy decode with a full forward per token (no KV cache): fine for a 100-prompt check."""
    ids, _ = encode(tokenizer, prompt, None)
    end_ids = {tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.eos_token_id}
    new_ids = []
    for _ in range(max_new_tokens):
        next_id = int(model(torch.tensor([ids + new_ids]))[0, -1].argmax())
        new_ids.append(next_id)
        if next_id in end_ids:
            break
    return tokenizer.decode(new_ids)


@torch.no_grad()
def evaluate(model, tokenizer, num_prompts: int, num_pairs: int) -> dict:
    model.eval()
    rng = random.Random(SEEDS["eval_prompts"])
    by_len: dict[int, list[float]] = {n: [] for n in P_CORRECT}
    for _ in range(num_prompts):
        words = task.sample_words(rng)
        prompt = task.make_prompt(words)
        generated = greedy_answer(model, tokenizer, prompt)
        by_len[len(words)].append(task.score({"prompt": prompt, "generated_text": generated}))
    wins = []
    for row in task.make_preference_rows(num_pairs, SEEDS["eval_pairs"]):
        avg = []
        for messages in (row["chosen"], row["rejected"]):
            ids, prompt_len = encode(tokenizer, row["prompt"], messages[-1]["content"])
            logps = token_logps(model, torch.tensor([ids]))[0, prompt_len - 1:]
            avg.append(logps.mean().item())
        wins.append(float(avg[0] > avg[1]))
    scores = [s for v in by_len.values() for s in v]
    return {
        "greedy_task_accuracy": sum(scores) / len(scores),
        "greedy_accuracy_by_num_words": {n: round(sum(v) / len(v), 3) for n, v in by_len.items() if v},
        "pairwise_accuracy": sum(wins) / len(wins),
        "num_prompts": len(scores),
        "num_pairs": len(wins),
    }


def write_data(path: Path, num_rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in task.make_preference_rows(num_rows, SEEDS["bundled_data"]):
            f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--data-path", type=Path, default=BUNDLED_DATA)
    parser.add_argument("--num-rows", type=int, default=2000, help="preference rows to write")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--clean-steps", type=int, default=1000, help="first updates on correct answers only")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--eval-prompts", type=int, default=100)
    parser.add_argument("--eval-pairs", type=int, default=200)
    parser.add_argument("--eval-only", action="store_true", help="measure the model already in --model-dir")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = build_tokenizer()
    if not args.eval_only:
        write_data(args.data_path, args.num_rows)
        model = build_model(tokenizer, args.seed)
        print(f"{model.num_parameters():,} parameters", flush=True)
        train_sec = train(model, tokenizer, args.steps, args.clean_steps, args.batch_size, args.lr, args.warmup,
                          args.log_every)
        print(f"trained {args.steps} steps in {train_sec:.0f}s", flush=True)
        save_model(model, args.model_dir, dtype=torch.bfloat16)
        tokenizer.save_pretrained(args.model_dir)
        # transformers.generate stops at these; the chat turn ends with <|end|>, plain text with </s>.
        GenerationConfig(bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)],
                         ).save_pretrained(args.model_dir)
    # Measure what was saved (bf16 weights), not the fp32 model still in memory.
    metrics = evaluate(load_model(args.model_dir), tokenizer, args.eval_prompts, args.eval_pairs)
    print(json.dumps(metrics, indent=2), flush=True)
    (args.model_dir / "base_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if not args.eval_only:
        write_readme(args, metrics, train_sec)


def write_readme(args: argparse.Namespace, metrics: dict, train_sec: float) -> None:
    command = "python scripts/make_tiny_reverse.py " + " ".join(sys.argv[1:])
    (args.model_dir / "README.md").write_text(
        f"# tiny-reverse\n\n"
        f"The embedded default's base model: a 4-layer tiny Llama (hidden 256, 4 heads, 2 KV heads, vocab 4096, "
        f"tied embeddings) with a whitespace word tokenizer, for the reverse-words task "
        f"(`simpo_live.tasks.reverse_words`). Made by `{command.strip()}` "
        f"({args.steps} supervised updates of {args.batch_size} chat conversations, the first {args.clean_steps} "
        f"with correct answers only, the rest correct with probability {P_CORRECT} by list length and otherwise "
        f"mostly the original order; {train_sec:.0f} s on {args.threads} CPU threads). "
        f"Measured on the saved bf16 weights: greedy task accuracy {metrics['greedy_task_accuracy']:.2f} on "
        f"{metrics['num_prompts']} held-out prompts (by number of words: {metrics['greedy_accuracy_by_num_words']}), "
        f"pairwise accuracy (average log-prob chosen > rejected) {metrics['pairwise_accuracy']:.3f} on "
        f"{metrics['num_pairs']} held-out pairs. The preference data it pairs with is "
        f"`assets/data/reverse_prefs.jsonl` ({args.num_rows} rows, written by the same command).\n"
    )


if __name__ == "__main__":
    main()
