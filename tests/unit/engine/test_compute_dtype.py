"""EngineConfig.compute_dtype: the engine runs a bf16 copy of an fp32 model. Its outputs must still not depend on
batching, paging or order (bf16 decode attention takes its own bmm path on CPU), and it must follow weight updates
made to the fp32 model, as the shared-weights engine does."""

import pytest
import torch

from simpo_live.engine import Engine, EngineConfig, Request, SamplingParams

BF16 = dict(compute_dtype=torch.bfloat16)
GREEDY = SamplingParams(temperature=0, max_new_tokens=20, ignore_eos=True)
SAMPLED = SamplingParams(temperature=1.0, max_new_tokens=20, seed=4, ignore_eos=True)


def requests_for(prompts):
    return [Request(f"p{i}", p, GREEDY if i % 2 else SAMPLED) for i, p in enumerate(prompts)]


def run(model, requests, **config):
    with Engine(model, None, EngineConfig(**BF16, **config)) as engine:
        return {c.request_id: c.token_ids for c in engine.generate(requests)}


@pytest.fixture(scope="module")
def reference(tiny_model, prompts):
    return run(tiny_model, requests_for(prompts), max_seqs=1, page_size=16, max_pages=64)


# Not compared: the loop reference (engine_references.loop_decode, exact-length SDPA) against the slot path (chunked
# bmm): two kernels, chosen by configuration and not by the batch, whose bf16 rounding differs enough to flip sampled
# tokens.
@pytest.mark.parametrize("config", [dict(max_seqs=16), dict(max_seqs=3, page_size=8), dict(max_pages=30, page_size=8,
                                    max_seq_len=88), dict(max_pages=12, page_size=8, max_seqs=5)])
def test_bf16_outputs_do_not_depend_on_batching(tiny_model, prompts, reference, config):
    assert run(tiny_model, requests_for(prompts), **config) == reference
    assert run(tiny_model, requests_for(prompts)[::-1], **config) == reference


def test_bf16_copy_runs_in_bf16_and_keeps_the_source(tiny_model):
    with Engine(tiny_model, None, EngineConfig(**BF16)) as engine:
        assert engine.model is not tiny_model and engine.model.lm_head.weight.dtype == torch.bfloat16
        assert engine.model.inv_freq.dtype == torch.float32  # RoPE frequencies are not rounded
        assert engine.runner.cache.dtype == torch.bfloat16  # KV follows the compute dtype by default
    assert tiny_model.lm_head.weight.dtype == torch.float32


def test_bf16_engine_sees_weight_updates(tiny_model_factory, prompts):
    model = tiny_model_factory(seed=1)
    request = [Request(0, prompts[2], GREEDY)]
    with Engine(model, None, EngineConfig(**BF16)) as engine:
        before = engine.generate(request)[0].token_ids
        engine.add_request(Request(1, prompts[2], GREEDY))
        engine.step()  # prefill with the old weights
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)  # bumps the version counters
        assert engine.weights._key != engine.weights._source_key(list(model.parameters()))
        engine.step()  # the copy is refreshed before this round
        assert torch.equal(engine.model.lm_head.weight, model.lm_head.weight.bfloat16())
        while engine.has_unfinished():
            engine.step()
        after = engine.generate(request)[0].token_ids
    fresh = run(model, request)
    assert before != after and after == fresh[0]
