from simpo_live.distributed.sharding import shard_bounds
from simpo_live.evals.stats import HostStats, distinct_ratio, is_looping, percentile, summarize_hosts
from generation_rows import make_row


def row(text, tokens, reason="stop", sample_index=0, score=None):
    return make_row(generated_text=text, generated_token_count=tokens, finish_reason=reason, sample_index=sample_index,
                    score=score)


def test_loop_detection_and_distinct():
    assert is_looping(("the cat sat " * 10).split())
    assert not is_looping([f"w{i}" for i in range(40)])
    assert not is_looping("a a a".split())  # too short to call a loop
    assert distinct_ratio("a b a b".split(), 2) == 2 / 3


def test_host_summaries_add_up_exactly():
    a, b = HostStats(0), HostStats(1)
    a.add_row(row("x y z", 3, score=1.0))
    a.add_row(row("x y z w", 4, "length", sample_index=1, score=0.0))
    b.add_row(row("q " * 20, 20, "length", score=1.0))
    a.generation_time_sec, b.generation_time_sec = 2.0, 4.0
    metrics = summarize_hosts([a, b], {"chosen": [5, 6, 7]})
    assert metrics["num_prompts"] == 2 and metrics["num_samples"] == 3
    assert metrics["total_tokens"] == 27
    assert metrics["generation_time_sec"] == 4.0
    assert metrics["tokens_per_second"] == 27 / 4.0
    assert metrics["frac_stopped_by_length"] == 2 / 3
    assert metrics["loop_rate"] == 1 / 3
    assert metrics["scorer_mean"] == 2 / 3
    assert metrics["data_chosen_length_p50"] == 6.0


def test_percentile_nearest_rank():
    assert percentile([5, 1, 3], 50) == 3.0
    assert percentile([], 90) == 0.0


def test_shard_bounds_cover_every_item_once():
    for n in (0, 1, 7, 1024):
        for world in (1, 2, 3, 4):
            covered = []
            for rank in range(world):
                start, end = shard_bounds(n, rank, world)
                assert start == rank * n // world
                covered.extend(range(start, end))
            assert covered == list(range(n))
