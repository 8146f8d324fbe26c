"""The base of every config section, and the bounds and patterns several sections share."""

from __future__ import annotations

import re

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds
MODULE_FUNCTION = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _module_function(spec: str | None) -> str | None:
    if spec is not None and not MODULE_FUNCTION.fullmatch(spec):
        raise ValueError("expected 'module:function', e.g. 'my_scorers:score'")
    return spec


ScorerSpec = Annotated[str | None, AfterValidator(_module_function)]
"""A user scorer, 'module:function', or None."""


class Section(BaseModel):
    # allow_inf_nan=False: no float key has a meaning at NaN or infinity; they only make training non-finite.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
                              allow_inf_nan=False)
