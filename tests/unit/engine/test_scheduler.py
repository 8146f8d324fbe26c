"""Scheduling decisions with plain sequences and a fake runner: admission, FIFO, chunking, decoding, freeing."""

from engine_references import PageRuns as BlockManager
from simpo_live.engine.params import SamplingParams
from simpo_live.engine.scheduler import Scheduler
from simpo_live.engine.sequence import Sequence, SequenceStatus


def make_seq(name, prompt_len, max_new=4, stop=frozenset()):
    return Sequence(name, 0, list(range(10, 10 + prompt_len)), SamplingParams(max_new_tokens=max_new), 0, stop)


def run_round(scheduler, token=1):
    """Schedule, then pretend the runner sampled `token` for every sampled row."""
    batch = scheduler.schedule()
    finished = scheduler.postprocess(batch, [token] * len(batch.sampled), None)
    return batch, finished


def test_max_seqs_caps_running_and_queue_is_fifo():
    scheduler = Scheduler(BlockManager(100, 4), max_seqs=2, max_tokens_per_round=100)
    seqs = [make_seq(i, 3) for i in range(4)]
    for s in seqs:
        scheduler.add(s)
    batch, _ = run_round(scheduler)
    assert [c.seq.request_id for c in batch.prefill] == [0, 1]
    assert [s.request_id for s in scheduler.waiting] == [2, 3]


def test_admission_reserves_prompt_plus_max_new_tokens_in_pages():
    bm = BlockManager(num_pages=4, page_size=4)  # 16 tokens
    scheduler = Scheduler(bm, max_seqs=8, max_tokens_per_round=100)
    a, b = make_seq("a", 5, max_new=6), make_seq("b", 2, max_new=4)  # 11 -> 3 pages, 6 -> 2 pages
    scheduler.add(a)
    scheduler.add(b)
    batch, _ = run_round(scheduler)
    assert [c.seq for c in batch.prefill] == [a]  # b does not fit beside a's reservation
    assert bm.num_free_pages == 1 and b.status is SequenceStatus.WAITING
    while a.status is not SequenceStatus.FINISHED:
        run_round(scheduler)
    assert a.num_output_tokens == 6 and a.finish_reason == "length"
    batch, _ = run_round(scheduler)
    assert [c.seq for c in batch.prefill] == [b]  # admitted once a's pages came back


def test_head_of_queue_is_never_overtaken():
    bm = BlockManager(num_pages=4, page_size=4)
    scheduler = Scheduler(bm, max_seqs=8, max_tokens_per_round=100)
    big, small = make_seq("big", 10, max_new=6), make_seq("small", 1, max_new=1)
    scheduler.add(make_seq("first", 4, max_new=4))  # 2 pages
    scheduler.add(big)  # needs 4 pages: waits
    scheduler.add(small)  # would fit, but must not jump the queue
    batch, _ = run_round(scheduler)
    assert [c.seq.request_id for c in batch.prefill] == ["first"]
    assert list(scheduler.waiting) == [big, small]


def test_prefill_chunks_are_multiples_of_the_round_budget():
    scheduler = Scheduler(BlockManager(100, 4), max_seqs=4, max_tokens_per_round=8)
    long, short = make_seq("long", 20), make_seq("short", 6)
    scheduler.add(long)
    scheduler.add(short)
    spans = []
    for _ in range(4):
        batch, _ = run_round(scheduler)
        spans.append([(c.seq.request_id, c.start, c.end) for c in batch.prefill])
    assert spans[0] == [("long", 0, 8)]  # short's 6-token chunk does not fit the 0 tokens left
    assert spans[1] == [("long", 8, 16)]
    assert spans[2] == [("long", 16, 20)]  # 4 left, short's whole chunk (6) does not fit: it waits, whole
    assert spans[3] == [("short", 0, 6)]


def test_every_running_sequence_decodes_each_round():
    scheduler = Scheduler(BlockManager(100, 4), max_seqs=4, max_tokens_per_round=100)
    seqs = [make_seq(i, 2 + i, max_new=3) for i in range(3)]
    for s in seqs:
        scheduler.add(s)
    first, _ = run_round(scheduler)
    assert len(first.sampled) == 3 and not first.decode  # last chunk of each prompt samples the first token
    second, _ = run_round(scheduler)
    assert second.decode == seqs and not second.prefill
    _, finished = run_round(scheduler)
    assert finished == seqs and not scheduler.has_unfinished()
    assert scheduler.block_manager.num_free_pages == 100


def test_stop_token_finishes_early_and_frees_pages():
    bm = BlockManager(10, 4)
    scheduler = Scheduler(bm, max_seqs=4, max_tokens_per_round=100)
    seq = make_seq("s", 3, max_new=8, stop=frozenset({99}))
    scheduler.add(seq)
    run_round(scheduler, token=5)
    _, finished = run_round(scheduler, token=99)
    assert finished == [seq] and seq.finish_reason == "stop"
    assert seq.output_token_ids == [5, 99] and bm.num_free_pages == 10
