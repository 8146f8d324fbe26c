"""The whole engine on a tiny random model: outputs independent of batching, capacity errors, stops, samples.

References are the engine's own run with one sequence at a time and a roomy cache (and, for greedy, the model's
plain forward pass), so a scheduling change that alters any token fails here.
"""

import pytest
import torch

from engine_references import loop_decode, page_runs
from simpo_live.engine import CapacityError, Engine, EngineConfig, Request, SamplingParams
from simpo_live.engine.kv_cache import build_storage

EOS = 3  # the tiny model's eos_token_id (conftest.py)

GREEDY = SamplingParams(temperature=0, max_new_tokens=24, ignore_eos=True)
SAMPLED = [SamplingParams(temperature=1.0, max_new_tokens=24, seed=11, ignore_eos=True),
           SamplingParams(temperature=0.8, top_k=20, top_p=0.9, max_new_tokens=24, seed=12, ignore_eos=True)]


def requests_for(prompts, mixed=True):
    """Greedy and seeded-sampling requests over the prompts (ids are stable across reorderings)."""
    params = [GREEDY, *SAMPLED] if mixed else [GREEDY]
    return [Request(f"p{i}", p, params[i % len(params)]) for i, p in enumerate(prompts)]


def run(model, requests, storage_factory=build_storage, **config):
    with Engine(model, None, EngineConfig(**config), storage_factory=storage_factory) as engine:
        return {c.request_id: c.token_ids for c in engine.generate(requests)}


@pytest.fixture(scope="module")
def reference(tiny_model, prompts):
    return run(tiny_model, requests_for(prompts), max_seqs=1, page_size=16, max_pages=64)


def greedy_by_forward(model, prompt, num_new):
    """Greedy continuation by re-running the full sequence through the training path: no cache at all."""
    tokens = list(prompt)
    with torch.inference_mode():
        for _ in range(num_new):
            tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    return tokens[len(prompt):]


def test_greedy_matches_uncached_forward(tiny_model, prompts, reference):
    for i in (0, 3, 6):  # the greedy requests (every third): 2-, 17- and 48-token prompts
        assert reference[f"p{i}"] == greedy_by_forward(tiny_model, prompts[i], GREEDY.max_new_tokens)


@pytest.mark.parametrize("config", [
    dict(max_seqs=3), dict(max_seqs=16), dict(max_seqs=256, max_tokens_per_round=2048),
    dict(page_size=1), dict(page_size=64), dict(max_pages=3, page_size=32),  # pressure: one sequence at a time
    dict(max_pages=12, page_size=8, max_seqs=5), dict(max_pages=30, page_size=8, max_seq_len=88),  # 2 slots
    dict(storage_factory=page_runs()),  # reference layouts (engine_references.py): page runs + gather
    dict(storage_factory=page_runs(), max_pages=12, page_size=8, max_seqs=5),  # fragmentation
    dict(storage_factory=page_runs(gather=False), max_seqs=4),  # page runs + one SDPA per sequence
    dict(storage_factory=page_runs(gather=False), max_seqs=1),
    dict(kv_layout="strided_slots"), dict(kv_layout="strided_slots", max_seqs=3, page_size=8),  # slot views
    dict(kv_layout="strided_slots", max_pages=30, page_size=8, max_seq_len=88),
])
def test_outputs_do_not_depend_on_batching_paging_or_pressure(tiny_model, prompts, reference, config):
    assert run(tiny_model, requests_for(prompts), **config) == reference


def test_decode_paths_agree_on_greedy_outputs(tiny_model, prompts, reference):
    """Loop and batched attention differ in the last bits (research 6.C), which does not flip these tokens."""
    loop = run(tiny_model, requests_for(prompts, mixed=False), storage_factory=loop_decode(build_storage), max_seqs=4)
    assert all(loop[f"p{i}"] == reference[f"p{i}"] for i in range(0, len(prompts), 3))


def test_outputs_do_not_depend_on_request_order(tiny_model, prompts, reference):
    requests = requests_for(prompts)
    assert run(tiny_model, requests[::-1], max_seqs=4) == reference
    assert run(tiny_model, requests[3:] + requests[:3], max_seqs=7) == reference


def test_chunked_prefill_matches_one_chunk_for_greedy(tiny_model, prompts, reference):
    chunked = run(tiny_model, requests_for(prompts, mixed=False), max_tokens_per_round=16, max_seqs=4)
    assert all(chunked[f"p{i}"] == reference[f"p{i}"] for i in range(0, len(prompts), 3))


def test_every_sequence_reaches_max_new_tokens_unless_stopped(tiny_model, prompts):
    params = SamplingParams(temperature=1.0, max_new_tokens=30, seed=3)  # EOS honoured
    with Engine(tiny_model, None, EngineConfig(max_seqs=4, max_pages=20, page_size=8)) as engine:
        completions = engine.generate([Request(i, p, params) for i, p in enumerate(prompts)])
    for c in completions:
        if c.finish_reason == "length":
            assert len(c.token_ids) == 30 and EOS not in c.token_ids
        else:
            assert c.token_ids[-1] == EOS and EOS not in c.token_ids[:-1] and len(c.token_ids) <= 30


def test_stop_token_ends_the_sequence(tiny_model, prompts, reference):
    full = reference["p0"]
    stop = full[5]
    first = full.index(stop)
    params = SamplingParams(temperature=0, max_new_tokens=24, stop_token_ids=(stop,))
    with Engine(tiny_model, None, EngineConfig()) as engine:
        [c] = engine.generate([Request("p0", prompts[0], params)])
    assert c.token_ids == full[:first + 1] and c.finish_reason == "stop"


def test_default_stops_are_eos_and_end_of_turn(tiny_model, word_tokenizer):
    with Engine(tiny_model, word_tokenizer, EngineConfig()) as engine:
        expected = {EOS, word_tokenizer.eos_token_id, word_tokenizer.convert_tokens_to_ids("<|end|>")}
        assert engine.stop_token_ids == expected


def test_n_samples_have_their_own_seeds(tiny_model, prompts):
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=5, n=3, ignore_eos=True)
    with Engine(tiny_model, None, EngineConfig()) as engine:
        many = engine.generate([Request("a", prompts[1], params)])
        [single] = engine.generate([Request("b", prompts[1], SamplingParams(
            temperature=1.0, max_new_tokens=16, seed=5, n=1, ignore_eos=True))])
    assert [c.sample_index for c in many] == [0, 1, 2]
    assert len({tuple(c.token_ids) for c in many}) == 3
    assert many[0].token_ids == single.token_ids and many[0].seed == single.seed


def test_logprobs_match_the_model(tiny_model, prompts):
    params = SamplingParams(temperature=0.7, max_new_tokens=6, seed=1, logprobs=True, ignore_eos=True)
    with Engine(tiny_model, None, EngineConfig()) as engine:
        [c] = engine.generate([Request(0, prompts[3], params)])
    with torch.inference_mode():
        logits = tiny_model(torch.tensor([prompts[3] + c.token_ids]))[0, len(prompts[3]) - 1:-1]
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.token_ids).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-5)


def test_request_larger_than_the_cache_is_refused_with_the_knobs(tiny_model):
    engine = Engine(tiny_model, None, EngineConfig(max_pages=4, page_size=16))
    with pytest.raises(CapacityError) as error:
        engine.generate([Request("big", list(range(8, 58)), SamplingParams(max_new_tokens=30))])
    assert str(error.value) == ("request 'big': prompt 50 needs 5 pages (80 tokens) but the cache has 4 pages "
                                "of 16: raise max_pages (or hbm_utilization) or lower max_new_tokens")
    assert not engine.has_unfinished()  # nothing was queued


def test_request_longer_than_max_seq_len_is_refused(tiny_model):
    engine = Engine(tiny_model, None, EngineConfig(max_seq_len=64))
    with pytest.raises(CapacityError, match=r"request 7: prompt 40 \+ max_new_tokens 30 = 70 tokens exceeds "
                                            r"max_seq_len 64: lower max_new_tokens"):
        engine.add_request(Request(7, list(range(8, 48)), SamplingParams(max_new_tokens=30)))
    with pytest.raises(ValueError, match="exceeds the model's max_position_embeddings 512"):
        Engine(tiny_model, None, EngineConfig(max_seq_len=1000))


def test_step_streams_progress_and_close_frees_the_cache(tiny_model, prompts):
    engine = Engine(tiny_model, None, EngineConfig(max_pages=32))
    for i, p in enumerate(prompts[:4]):
        engine.add_request(Request(i, p, GREEDY))
    generated, finished = 0, []
    while engine.has_unfinished():
        result = engine.step()
        generated += result.num_generated_tokens
        finished += result.finished
    assert generated == 4 * GREEDY.max_new_tokens and len(finished) == 4
    assert engine.block_manager.num_free_pages == 32 and engine.kv_cache_bytes > 0
    with engine:
        pass
    assert engine.runner.cache.k == []
    with pytest.raises(RuntimeError, match="closed"):
        engine.step()


def test_engine_sees_weight_updates(tiny_model_factory, prompts):
    model = tiny_model_factory(seed=1)
    request = [Request(0, prompts[2], GREEDY)]
    with Engine(model, None, EngineConfig()) as engine:
        before = engine.generate(request)[0].token_ids
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
        after = engine.generate(request)[0].token_ids
    assert before != after
    assert after == greedy_by_forward(model, prompts[2], GREEDY.max_new_tokens)


def test_bad_sampling_values_are_rejected_at_construction():
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\] \(got 0.0\); n must be >= 1"):
        SamplingParams(top_p=0.0, n=0)
    with pytest.raises(ValueError, match="hbm_utilization"):
        EngineConfig(hbm_utilization=1.5)


def test_a_long_context_beside_short_ones_keeps_its_outputs(tiny_model_factory):
    """A 1010-token prompt (16 position chunks, read alone past the short prompts' chunks, gathered when sparse)
    decodes beside short prompts: its tokens equal its run alone and the uncached forward pass."""
    model = tiny_model_factory(seed=2, max_position_embeddings=1100)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(8, 128, (n,), generator=g).tolist() for n in (1010, 3, 40, 7)]
    params = SamplingParams(temperature=0, max_new_tokens=30, ignore_eos=True)
    requests = [Request(i, p, params) for i, p in enumerate(prompts)]
    together = run(model, requests, max_seqs=4, max_seq_len=1100)
    alone = run(model, requests, max_seqs=1, max_seq_len=1100)
    assert together == alone
    assert together[0] == greedy_by_forward(model, prompts[0], 30)


def test_a_narrower_kv_cache_dtype_runs_and_keeps_lengths(tiny_model, prompts, reference):
    requests = requests_for(prompts, mixed=False)
    with Engine(tiny_model, None, EngineConfig(dtype=torch.bfloat16)) as engine:
        out = {c.request_id: c.token_ids for c in engine.generate(requests)}
        assert engine.kv_cache_bytes == engine.block_manager.pool_tokens * 2 * 2 * 2 * 16 * 2  # bf16: 2 bytes
    assert all(len(out[r.request_id]) == GREEDY.max_new_tokens for r in requests)
    assert out["p0"][:3] == reference["p0"][:3]  # rounding the cache to bf16 keeps the first greedy tokens


@pytest.mark.parametrize("config", [dict(max_seqs=16), dict(max_seqs=3), dict(max_pages=12, page_size=8, max_seqs=5),
                                    dict(max_seqs=16, kv_layout="strided_slots"),
                                    dict(max_seqs=3, page_size=8, kv_layout="strided_slots")])
def test_bucketed_decode_rounds_keep_outputs(tiny_model, prompts, reference, config):
    """The CUDA-graph decode path (static buffers, rows and contexts padded to buckets, padded rows on a scratch
    position or slot) run uncaptured on CPU: the same tokens as every other configuration."""
    factory = build_storage if config.get("kv_layout") == "strided_slots" else page_runs()  # reference: runs
    with Engine(tiny_model, None, EngineConfig(decode_graphs="on", **config), storage_factory=factory) as engine:
        assert engine.runner.graphs is not None
        out = {c.request_id: c.token_ids for c in engine.generate(requests_for(prompts))}
        assert engine.runner.graphs.buckets  # decode-only rounds went through it
    assert out == reference


def test_decode_graphs_on_needs_the_strided_slot_layout(tiny_model):
    with pytest.raises(ValueError, match="decode_graphs 'on' needs kv_layout 'strided_slots' \\(got 'slots'\\)"):
        Engine(tiny_model, None, EngineConfig(kv_layout="slots", decode_graphs="on"))


def test_a_bucket_is_captured_once_after_its_eager_runs_then_replayed(tiny_model, prompts, reference, monkeypatch):
    """The capture decision of decode_graph.py, run on CPU: the CUDA capture is replaced by a stand-in graph whose
    replay runs the same bucketed forward."""
    from simpo_live.engine import decode_graph

    captures, replays = [], []

    class StandInGraph:
        def __init__(self, forward):
            self.forward = forward

        def replay(self):
            replays.append(self.forward.num_uses)
            self.forward()

    def capture(forward, pool, stream):
        captures.append((forward.rows, forward.context, forward.num_uses))
        forward.graph = StandInGraph(forward)

    monkeypatch.setattr(decode_graph.BucketForward, "capture", capture)
    with Engine(tiny_model, None, EngineConfig(decode_graphs="on", kv_layout="strided_slots", max_seqs=16)) as engine:
        engine.runner.graphs.capture = True  # what CUDA sets; pool and stream stay None here
        out = {c.request_id: c.token_ids for c in engine.generate(requests_for(prompts))}
        uses = {key: forward.num_uses for key, forward in engine.runner.graphs.buckets.items()}
    assert out == reference
    assert captures == [(rows, context, decode_graph.CAPTURE_AFTER_USES) for (rows, context), n in uses.items()
                        if n >= decode_graph.CAPTURE_AFTER_USES]
    assert captures and len(replays) == sum(n - decode_graph.CAPTURE_AFTER_USES + 1 for n in uses.values()
                                            if n >= decode_graph.CAPTURE_AFTER_USES)
