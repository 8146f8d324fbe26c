"""The typed config tree. Every field's docstring is its `--help` text; validation happens once, at load time.

Code below `config/` trusts these objects: ranges, enums and cross-field rules are checked here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from simpo_live.config.onpolicy import OnPolicyConfig
from simpo_live.config.rollout import (
    DEFAULT_MAX_TOKENS_PER_ROUND,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SYNTHETIC_TEMPLATE,
    EngineSection,
    SamplingSection,
    ScoringSection,
    SwitchSection,
)
from simpo_live.config.section import MAX_SEED, Section

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_MODEL = ASSETS / "tiny-reverse"
BUNDLED_DATA = ASSETS / "data" / "reverse_prefs.jsonl"


PROMPT_SOURCES = ("prompts", "prompts_path", "synthetic_prompt_count", "heldout_prompt_count")


class ModelConfig(Section):
    path: str = str(BUNDLED_MODEL)
    """Local Hugging Face model directory (config.json, safetensors, tokenizer files)."""
    tokenizer_path: str | None = None
    """Tokenizer directory; defaults to model.path."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Dtype of the trained weights, their gradients and AdamW state. Under FSDP2, bfloat16 keeps fp32 shards and
    optimizer state and computes and all-gathers in bf16 (mixed precision)."""


class DataConfig(Section):
    train_path: str = str(BUNDLED_DATA)
    """Preference data: .jsonl, .json, .parquet, or a saved `datasets` directory (UltraFeedback layout)."""
    validation_path: str | None = None
    """Separate validation file; when unset, validation_split_fraction of train_path is held out."""
    validation_split_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Fraction of train_path held out for validation when validation_path is unset."""
    max_seq_len: int = Field(512, ge=2)
    """Longest prompt + response, in tokens."""
    max_prompt_len: int = Field(256, ge=1)
    """Longest prompt, in tokens."""
    overlong: Literal["error", "drop"] = "error"
    """What to do with a pair over max_seq_len or max_prompt_len: 'error' names the row, 'drop' counts it."""
    split: str = "train"
    """Split to read from a saved `datasets` DatasetDict directory."""
    validation_split: str | None = None
    """Split to read from validation_path when it is a DatasetDict directory (e.g. test_prefs); unset: split."""


class OptimizerConfig(Section):
    learning_rate: float = Field(1e-4, gt=0)
    """Peak AdamW learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW decoupled weight decay."""
    beta1: float = Field(0.9, ge=0, lt=1)
    """AdamW beta1."""
    beta2: float = Field(0.95, ge=0, lt=1)
    """AdamW beta2."""
    eps: float = Field(1e-8, gt=0)
    """AdamW epsilon."""
    warmup_steps: int = Field(10, ge=0)
    """Linear warmup length in optimizer updates."""
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup, down to min_lr_ratio * learning_rate at the last step."""
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    """Final learning rate as a fraction of the peak."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Clip the global gradient norm to this value; null disables clipping."""


# The decoder's nn.Linear modules a LoRA adapter may wrap (HF names). Not the lm_head: the chunked log-probs read its
# weight directly, so an adapter there would be skipped in training.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraConfig(Section):
    rank: int | None = Field(None, ge=1)
    """LoRA rank: train rank-r adapters (the peft library) on a frozen base model instead of every weight; null:
    full fine-tuning. Checkpoints then hold the adapters only (peft's adapter_model.safetensors and
    adapter_config.json); `simpo-live export RUN_DIR --merged OUT` writes the merged model."""
    alpha: float = Field(16.0, gt=0)
    """Adapter scale: the update added to a weight is (alpha / rank) x B @ A."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapters' input (training only)."""
    target_modules: list[Literal[LORA_TARGETS]] = Field(list(LORA_TARGETS), min_length=1)
    """Projections of every decoder layer that get an adapter."""

    @property
    def enabled(self) -> bool:
        return self.rank is not None

    @model_validator(mode="after")
    def _needs_peft(self) -> LoraConfig:
        if self.enabled and importlib.util.find_spec("peft") is None:
            raise ValueError("lora.rank is set but the peft library is not installed: pip install 'simpo-live[lora]'")
        return self


class TrainerConfig(Section):
    run_dir: str = Field("runs/default", min_length=1)
    """Run directory: config.yaml, metrics.jsonl, checkpoints/, inference_eval/, report.html. A --config file that
    sets none gets runs/<file stem>. A run directory belongs to one run: resuming it with a config that changes
    the run is refused (see allow_config_change)."""
    num_train_steps: int = Field(200, ge=1)
    """Optimizer updates to run. 'Step N' always means N updates completed."""
    train_batch_size: int = Field(16, ge=1)
    """Global batch in preference pairs per optimizer update, whatever the number of ranks."""
    micro_batch_size: int = Field(16, ge=1)
    """Pairs per forward/backward pass on one rank; gradients accumulate up to train_batch_size."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Run seed: shuffling, initial RNG state, and the root of every sampling seed."""
    checkpoint_every: int = Field(100, ge=1)
    """Save a checkpoint every N updates (and at the end)."""
    keep_last_checkpoints: int = Field(2, ge=1)
    """Checkpoints kept on disk; older ones are deleted."""
    validate_every: int = Field(50, ge=1)
    """Compute validation metrics every N updates (and at the end)."""
    log_every: int = Field(1, ge=1)
    """Log training metrics every N updates (and after the last); validation and evals log at their own steps."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device to train on: auto picks CUDA when available."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Autocast dtype: auto means bf16 on CUDA with bf16 support, fp32 elsewhere."""
    num_threads: int | None = Field(None, ge=1)
    """CPU intra-op threads per process; null: OMP_NUM_THREADS when set, else the cores per local rank."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """Parallelism under torchrun: DDP (a full replica per rank) or FSDP2 (sharded); one process uses neither."""
    distributed_timeout_sec: float = Field(600.0, gt=0)
    """Timeout for every collective and rendezvous; a dead rank becomes an error naming it."""
    progress: bool = True
    """Show a progress bar on the leader."""
    allow_config_change: bool = False
    """Resume a run directory even though this config changes the run (model, data, seed, batch, schedule, loss,
    num_train_steps...); the change is recorded in <run_dir>/config_changes.jsonl. A changed num_train_steps
    then re-stretches the learning-rate schedule to the new horizon from the resumed step on."""
    on_non_finite: Literal["error", "skip"] = "error"
    """A NaN/inf loss or gradient norm: 'error' stops the run naming the step and the last good checkpoint;
    'skip' drops that update (weights and optimizer state untouched) and counts it in train/skipped_updates."""
    preemption_grace_sec: float = Field(60.0, gt=0)
    """After SIGTERM: every rank checkpoints at the next step boundary and exits; if none is reached within
    this many seconds the process exits anyway (the rerun resumes from the last checkpoint)."""
    logprob_chunk_tokens: Literal["auto"] | Annotated[int, Field(ge=0)] = "auto"
    """Response positions per lm_head chunk (forward and recomputed backward): memory O(chunk x vocab), not
    O(tokens x vocab). auto: ~64 MiB of fp32 logits per chunk (vocab 128,256 -> 128); 0: all at once."""
    activation_checkpointing: bool = False
    """Recompute each decoder layer's activations in backward (non-reentrant) instead of keeping them."""
    packing: Literal["auto"] | bool = "auto"
    """Pack each micro-batch's pairs end to end into one padding-free row (positions restart and attention stays
    within each sequence); false: right-padded rows, the reference layout. auto: packed on CPU, and on CUDA when
    the varlen attention kernel serves the compute dtype (bf16/fp16, torch >= 2.10), padded otherwise; true where
    that kernel is missing falls back to padded with a warning (train/layout.py)."""
    micro_batch_tokens: Literal["auto"] | Annotated[int, Field(ge=2)] = "auto"
    """Packing: most tokens per micro-batch (chosen + rejected of its pairs; micro_batch_size still caps the pairs);
    at least 2 x data.max_seq_len so any pair fits. auto: 2 x micro_batch_size x data.max_seq_len, the padded
    layout's largest micro-batch, so only the pair count decides."""
    loss_type: Literal["sigmoid", "hinge"] = "sigmoid"
    """SimPO loss on z = beta * (margin - gamma_beta_ratio): sigmoid -log sigmoid(z) (the paper) or hinge
    relu(1 - z) (the SimPO repo's option)."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """sigmoid only: (1 - e) * -log sigmoid(z) + e * -log sigmoid(-z), for noisy preference labels."""
    sft_weight: float = Field(0.0, ge=0)
    """Adds sft_weight x the chosen response's mean token NLL to each pair's loss (the SimPO repo's SFT term)."""
    peak_flops: float | None = Field(None, gt=0)
    """Peak FLOP/s of one device in the compute dtype, for train/mfu; null: a table of known GPUs (none on CPU,
    where train/mfu is then not logged)."""

    @model_validator(mode="after")
    def _check_loss_options(self) -> TrainerConfig:
        if self.loss_type == "hinge" and self.label_smoothing:
            raise ValueError(f"trainer.label_smoothing ({self.label_smoothing}) applies to loss_type sigmoid only; "
                             "hinge has no smoothed form: set it to 0")
        return self


class TrackerConfig(Section):
    type: list[Literal["jsonl", "tensorboard", "wandb"]] = ["jsonl"]
    """Trackers to log to; jsonl (metrics.jsonl) is always on."""
    wandb_project: str = "simpo-live"
    """Weights & Biases project."""
    wandb_mode: Literal["online", "offline"] = "offline"
    """Weights & Biases mode; offline needs no network."""


class InferenceEvalConfig(EngineSection, ScoringSection, SamplingSection, SwitchSection):
    enabled: bool = False
    """Run the periodic inference eval."""
    eval_every: int | None = Field(None, ge=1)
    """Run after every N updates. One schedule: eval_every or eval_at_steps (a later layer's replaces an inherited
    one); neither: one eval after the last update."""
    eval_at_steps: list[Annotated[int, Field(ge=1)]] | None = None
    """Exact updates after which to run (the other schedule; see eval_every)."""
    eval_before_training: bool = False
    """Also run a baseline eval before the first update (step 0)."""
    inference_mode: Literal["host_data_parallel", "leader_only"] = "host_data_parallel"
    """host_data_parallel: every rank generates its contiguous slice; leader_only: rank 0 generates all."""
    prompts: list[str] | None = Field(None, min_length=1)
    """Inline prompts. One prompt source: prompts, prompts_path, synthetic_prompt_count or heldout_prompt_count (a
    later layer's replaces an inherited one); none: every held-out prompt."""
    prompts_path: str | None = None
    """Prompt file: text (one per line) or JSONL with a 'prompt' field."""
    synthetic_prompt_count: int | None = Field(None, ge=1)
    """Generate this many prompts from synthetic_prompt_template."""
    synthetic_prompt_template: str = DEFAULT_SYNTHETIC_TEMPLATE
    """Template for synthetic prompts; {index} is the prompt index."""
    heldout_prompt_count: int | None = Field(None, ge=1)
    """Use this many prompts of the validation split of the preference data (a prompt source like the others)."""
    use_chat_template: bool = True
    """Wrap each prompt in the tokenizer's chat template (one user message)."""
    n_samples: int = Field(1, ge=1)
    """Samples per prompt."""
    ignore_eos: bool = False
    """Generate exactly max_new_tokens, ignoring stop tokens."""
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = None
    """Extra stop token ids, added to the tokenizer's EOS and end-of-turn (which ignore_eos drops; these stay)."""
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1)
    """Engine: KV cache page size in tokens."""
    max_pages: int | None = Field(None, ge=1)
    """Engine: KV cache size in pages (overrides hbm_utilization)."""
    max_tokens_per_round: int = Field(DEFAULT_MAX_TOKENS_PER_ROUND, ge=1)
    """Engine: token budget per step for chunked prefill."""
    output_dir: str | None = None
    """Per-step outputs; defaults to <run_dir>/inference_eval."""
    max_logged_samples: int = Field(8, ge=0)
    """Rows of the samples table sent to trackers."""
    isolation: Literal["in_process", "subprocess"] = "in_process"
    """in_process: generate inside the trainer; subprocess: save weights and run `simpo-live sample`."""
    on_error: Literal["raise", "warn"] = "raise"
    """On a failed eval: stop the run, or record the error and keep training."""

    @model_validator(mode="after")
    def _one_prompt_source(self) -> InferenceEvalConfig:
        given = [f"inference_eval.{name}" for name in PROMPT_SOURCES if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"inference_eval: give at most one prompt source, got {' and '.join(given)} (none at "
                             "all: every held-out prompt)")
        if "{index}" not in self.synthetic_prompt_template:
            raise ValueError("inference_eval.synthetic_prompt_template must contain {index}")
        return self

    def engine_knobs(self) -> dict[str, Any]:
        """The shared knobs and the eval's own: the in-process eval and the `simpo-live sample` child of
        `isolation: subprocess` both get all of them, so their rows cannot differ."""
        return {**super().engine_knobs(), "page_size": self.page_size, "max_pages": self.max_pages,
                "max_tokens_per_round": self.max_tokens_per_round}

    def schedule_steps(self, num_train_steps: int) -> list[int]:
        """The exact updates after which the eval runs (0 = the baseline before training)."""
        if self.eval_at_steps is not None:
            steps = sorted(set(self.eval_at_steps))
        elif self.eval_every is not None:
            steps = list(range(self.eval_every, num_train_steps + 1, self.eval_every))
        else:
            steps = [num_train_steps]
        return ([0] if self.eval_before_training else []) + [s for s in steps if s <= num_train_steps]


class SimpoConfig(Section):
    """The whole run."""

    beta: float = Field(2.0, gt=0)
    """SimPO reward scale."""
    gamma_beta_ratio: float = Field(0.5, ge=0)
    """SimPO target margin divided by beta."""
    hf_save_path: str | None = None
    """Export HF checkpoints to <hf_save_path>/step-N; null disables export."""
    hf_save_steps: int | None = Field(None, ge=1)
    """Export every N updates (needs hf_save_path)."""
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig()
    tracker: TrackerConfig = TrackerConfig()
    inference_eval: InferenceEvalConfig = InferenceEvalConfig()
    onpolicy: OnPolicyConfig = OnPolicyConfig()
    lora: LoraConfig = LoraConfig()

    @model_validator(mode="after")
    def _check_cross_fields(self) -> SimpoConfig:
        if self.data.max_prompt_len >= self.data.max_seq_len:
            raise ValueError("data.max_prompt_len must be < data.max_seq_len "
                             f"(got {self.data.max_prompt_len} >= {self.data.max_seq_len})")
        if self.hf_save_steps is not None and self.hf_save_path is None:
            raise ValueError("hf_save_steps is set but hf_save_path is not")
        return self

    @model_validator(mode="after")
    def _check_packing_budget(self) -> SimpoConfig:
        budget, longest_pair = self.trainer.micro_batch_tokens, 2 * self.data.max_seq_len
        if self.trainer.packing and budget != "auto" and budget < longest_pair:
            raise ValueError(f"trainer.micro_batch_tokens ({budget}) must hold the longest pair: at least "
                             f"2 x data.max_seq_len = {longest_pair}")
        return self

    def micro_batch_tokens(self) -> int:
        """trainer.micro_batch_tokens as a number (auto resolved)."""
        if self.trainer.micro_batch_tokens == "auto":
            return 2 * self.trainer.micro_batch_size * self.data.max_seq_len
        return self.trainer.micro_batch_tokens
