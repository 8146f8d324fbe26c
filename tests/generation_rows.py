"""Typed generation rows for tests: every field a sensible default, the ones a test cares about given."""

from simpo_live.rollout.rows import GenerationRow


def make_row(**fields) -> GenerationRow:
    defaults = dict(step=0, global_prompt_index=0, sample_index=0, prompt="reverse: w1", generated_text="w1",
                    generated_token_count=1, prompt_token_count=4, finish_reason="stop", seed=0, process_index=0,
                    process_count=1)
    return GenerationRow(**{**defaults, **fields})
