"""Scorers used by tests through `inference_eval.scorer: "tests_scorers:..."`."""


def explode(row):
    raise RuntimeError("scorer exploded")


def die_on_rank_1(row):
    """Kill rank 1 mid-eval (no exception, no cleanup: like an OOM kill), so rank 0 must notice a dead peer.

    Rank 0 dawdles, so the peer is already gone when it reaches the gather (the case in which gloo's
    `monitored_barrier` raised a bare "Connection closed by peer" naming no rank).
    """
    import os
    import time

    if os.environ.get("RANK") == "1":
        os._exit(1)
    time.sleep(1.0)
    return 0.0


def stall_on_rank_1(row):
    """Make rank 1 hang mid-eval for longer than the eval timeout (a stuck, not dead, rank)."""
    import os
    import time

    if os.environ.get("RANK") == "1":
        time.sleep(float(os.environ.get("SIMPO_TEST_STALL_SEC", "60")))
    return 0.0


def word_count(row):
    """A graded score a random model's samples rarely tie on: the number of words generated."""
    return float(len(row["generated_text"].split()))
