"""Load the user's scorer, `inference_eval.scorer: "module:function"`, called per row and returning a float."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from simpo_live.errors import UserError
from simpo_live.rollout.rows import GenerationRow

Scorer = Callable[[dict[str, Any]], float]


class ScorerError(UserError):
    """A scorer that cannot be imported or called."""


def load_scorer(spec: str | None, key: str = "inference_eval.scorer") -> Scorer | None:
    if spec is None:
        return None
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ScorerError(f"{key}: expected 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or whatever the module raises (SyntaxError, ...) while importing
        raise ScorerError(f"{key}: cannot import module {module_name!r} "
                          f"({type(e).__name__}: {e})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ScorerError(f"{key}: module {module_name!r} has no function {function_name!r}"
                          + (f" ({function_name} is a {type(function).__name__})" if function is not None else ""))
    return function


def score_rows(rows: list[GenerationRow], scorer: Scorer | None) -> list[GenerationRow]:
    """The rows with the scorer's float `score` (the scorer gets each row's JSON form, as in host files)."""
    if scorer is None:
        return rows
    return [replace(row, score=float(scorer(row.to_json()))) for row in rows]
