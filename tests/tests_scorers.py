"""Scorers used by tests through `inference_eval.scorer: "tests_scorers:..."`."""


def explode(row):
    raise RuntimeError("scorer exploded")
