"""The memory plan's terms against what the code really holds (autograd's saved tensors, the model's
parameters), its phase arithmetic, and the knobs it names when a run does not fit."""

import pytest
import torch

from simpo_live.config import ConfigError, load_config
from simpo_live.data import TokenizedPair
from simpo_live.rollout.reward import inspect_reward_model, reward_model_bytes
from simpo_live.model import LlamaModel, ModelArgs
from simpo_live.model.rope import rope_cos_sin
from simpo_live.plan import MemoryPlan, check_fits, fitting_knobs
from simpo_live.plan.fit import format_plan, format_plan_report, knobs_that_fit_together
from simpo_live.plan.from_config import plan_inputs
from simpo_live.plan.terms import layer_activation_bytes_per_token, num_parameters
from tiny_training import saved_bytes

ARGS = ModelArgs(vocab_size=1000, hidden_size=96, intermediate_size=160, num_hidden_layers=8,
                 num_attention_heads=6, num_key_value_heads=2, head_dim=16)


@pytest.mark.parametrize("tied", [False, True])
def test_parameter_count_is_the_models(tied):
    args = ModelArgs(**{**ARGS.__dict__, "tie_word_embeddings": tied, "extra": {}})
    with torch.device("meta"):
        assert num_parameters(args) == LlamaModel(args).num_parameters()


@pytest.mark.parametrize("autocast", [False, True])
def test_layer_activations_are_what_autograd_saves(autocast):
    """The formula counts one decoder layer's saved tensors, weights (already counted as parameters) excluded."""
    model = LlamaModel(ARGS)
    layer, rows, seq = model.model.layers[0], 2, 40  # 80 tokens: no activation shaped like a weight
    x = torch.randn(rows, seq, ARGS.hidden_size, requires_grad=True)
    cos, sin = rope_cos_sin(torch.arange(seq).expand(rows, seq), model.inv_freq, x.dtype)
    weights = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    context = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)

    def run():
        with context:
            layer(x, cos, sin, None)

    counted = saved_bytes(run, exclude=weights | {cos.untyped_storage().data_ptr(), sin.untyped_storage().data_ptr()})
    if autocast:  # autocast's bf16 copies of the weights: the plan's own term, not activations
        counted -= sum(p.numel() * 2 for p in layer.parameters() if p.dim() == 2)
    expected = layer_activation_bytes_per_token(ARGS, residual_bytes=4, compute_bytes=2 if autocast else 4,
                                                autocast=autocast)
    assert counted == expected * rows * seq


def plan_of(*overrides: str, device_gib: float = 1000.0, world_size: int = 1, args: ModelArgs = ARGS) -> MemoryPlan:
    cfg = load_config(overrides=["--inference_eval.enabled=false", *overrides])
    pair = TokenizedPair([1] * 300, [1] * 200, [1] * 100, "t", "")
    inputs = plan_inputs(cfg, args, world_size, "cpu", pairs=[pair])
    return MemoryPlan.of(inputs, int(device_gib * 2**30))


def test_phases_add_their_terms_and_the_peak_is_the_larger():
    plan = plan_of("--inference_eval.enabled=true", "--inference_eval.dtype=bfloat16")
    terms = {name: (phase, b) for name, phase, b in plan.terms}
    assert terms["eval replica"] == ("eval", num_parameters(ARGS) * 2)
    train = sum(b for p, b in terms.values() if p in ("train", "both"))
    assert plan.phase_bytes("train") == train and plan.peak_bytes == max(train, plan.phase_bytes("eval"))
    inherited = terms["reward model"][1]  # the default preset's bundled reward model, weights + one batch
    info = inspect_reward_model("bundled:tiny-reverse-rm")
    assert inherited == reward_model_bytes(info, torch.float32, 16384) > info.num_parameters * 4
    with_rm = MemoryPlan.of(plan.inputs.with_knob(reward_model_bytes=123), plan.device_bytes)
    assert with_rm.phase_bytes("eval") == plan.phase_bytes("eval") - inherited + 123


def test_fsdp_divides_the_sharded_terms():
    one, two = plan_of(), plan_of("--trainer.strategy=fsdp", "--trainer.train_batch_size=32", world_size=2)
    bytes_of = lambda plan: {n: b for n, _, b in plan.terms}  # noqa: E731
    for name in ("parameters", "optimizer state (AdamW moments)", "gradients"):
        assert bytes_of(two)[name] == pytest.approx(bytes_of(one)[name] / 2, abs=4)
    assert "FSDP gathered units" in bytes_of(two)


def test_chunking_and_checkpointing_shrink_their_terms():
    plain = plan_of("--trainer.logprob_chunk_tokens=0")
    chunked = plan_of("--trainer.logprob_chunk_tokens=64", "--trainer.activation_checkpointing=true")
    bytes_of = lambda plan: {n: b for n, _, b in plan.terms}  # noqa: E731
    assert bytes_of(chunked)["logits"] < bytes_of(plain)["logits"] / 5
    assert bytes_of(chunked)["activations"] < bytes_of(plain)["activations"] / 2


def test_a_run_that_cannot_fit_names_the_knobs_that_would():
    large_vocab = ModelArgs(**{**ARGS.__dict__, "vocab_size": 64_000, "extra": {}})
    plan = plan_of("--trainer.logprob_chunk_tokens=0", device_gib=2.0, args=large_vocab)
    assert not plan.fits
    knobs = dict(fitting_knobs(plan))
    assert "--trainer.activation_checkpointing=true" in knobs and "--trainer.logprob_chunk_tokens=auto" in knobs
    with pytest.raises(ConfigError) as error:
        check_fits(plan)
    message = str(error.value)
    assert "memory plan: the peak per rank is" in message and "--trainer.micro_batch_size=<half>" in message
    assert "reward model" not in message  # the eval has none here: the training step is what does not fit


def test_knobs_combine_when_no_single_one_fits():
    large_vocab = ModelArgs(**{**ARGS.__dict__, "vocab_size": 64_000, "extra": {}})
    plan = plan_of("--trainer.logprob_chunk_tokens=0", device_gib=0.9, args=large_vocab)
    assert all(peak > plan.device_bytes for _, peak in fitting_knobs(plan))
    together = knobs_that_fit_together(plan)
    assert together == ["--trainer.logprob_chunk_tokens=auto", "--trainer.activation_checkpointing=true"]
    both = plan_of("--trainer.logprob_chunk_tokens=auto", "--trainer.activation_checkpointing=true",
                   device_gib=0.9, args=large_vocab)
    assert both.fits  # the combination, applied through the config, really fits


def test_on_policy_pairs_and_their_reward_model_bound_the_plan():
    """A round's pairs can be longer than the data's (prompt + max_new_tokens + template), and its reward model
    is counted when the eval has none."""
    base = ["--data.max_seq_len=1024", "--data.max_prompt_len=600", "--trainer.micro_batch_size=2",
            "--trainer.train_batch_size=2"]
    offline = plan_of(*base).inputs
    assert (offline.seq_len, offline.response_tokens) == (500, 4 * 200)  # the data's longest pair
    rounds = ["--onpolicy.enabled=true", "--onpolicy.every=10", "--onpolicy.max_new_tokens=300",
              "--onpolicy.reward_model=bundled:tiny-reverse-rm"]
    onpolicy = plan_of(*base, *rounds)
    assert (onpolicy.inputs.seq_len, onpolicy.inputs.response_tokens) == (600 + 308, 4 * 308)
    info = inspect_reward_model("bundled:tiny-reverse-rm")
    assert dict((n, b) for n, _, b in onpolicy.terms)["reward model"] == reward_model_bytes(info, torch.float32, 16384)
    capped = plan_of(*base, *rounds, "--onpolicy.max_new_tokens=5000").inputs
    assert (capped.seq_len, capped.response_tokens) == (1024, 4 * 1023)  # never past data.max_seq_len


def test_on_policy_rounds_size_the_eval_phase_when_their_engine_is_larger():
    evals_only = plan_of("--data.max_prompt_len=64", "--inference_eval.enabled=true", "--inference_eval.max_seqs=4",
                         "--inference_eval.max_new_tokens=16", "--inference_eval.max_pages=8")
    with_rounds = plan_of("--data.max_prompt_len=64", "--inference_eval.enabled=true", "--inference_eval.max_seqs=4",
                          "--inference_eval.max_new_tokens=16", "--inference_eval.max_pages=8",
                          "--onpolicy.enabled=true", "--onpolicy.every=10", "--onpolicy.scorer=tests_scorers:word_count",
                          "--onpolicy.max_seqs=64", "--onpolicy.max_new_tokens=100")
    assert evals_only.inputs.kv_cache_tokens == 8 * 16 and evals_only.inputs.kv_fraction is None
    request = 176  # data.max_prompt_len + the round's new tokens (164), in whole pages of 16
    assert with_rounds.inputs.kv_min_tokens == request and with_rounds.inputs.kv_cache_tokens == 64 * request
    assert with_rounds.phase_bytes("eval") > evals_only.phase_bytes("eval")


def test_train_prints_one_plan_line_unless_verbose_or_over():
    plan = plan_of(device_gib=64.0)
    summary = format_plan_report(plan, torch.device("cpu"))
    assert summary.count("\n") == 0
    assert summary.startswith(f"memory plan: peak {plan.peak_bytes / 2**30:.3f} GiB per rank")
    assert "of 64.000 GiB on cpu, 1 rank: fits" in summary
    table = format_plan_report(plan, torch.device("cpu"), verbose=True)
    assert table == format_plan(plan) and "train step total" in table
    over = plan_of(device_gib=0.001)
    assert format_plan_report(over, torch.device("cpu")) == format_plan(over)  # what does not fit is shown in full
