"""The memory plan: per-rank bytes of a training run, by term and phase, against the device (`simpo-live plan`)."""

from simpo_live.plan.fit import MemoryPlan, check_fits, fitting_knobs, format_plan
from simpo_live.plan.terms import PlanInputs, plan_terms

__all__ = ["MemoryPlan", "PlanInputs", "check_fits", "fitting_knobs", "format_plan", "plan_terms"]
