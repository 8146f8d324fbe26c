"""`--help` text for every config key, with its default and its field docstring."""

from __future__ import annotations

from pydantic import BaseModel

from simpo_live.config.schema import SimpoConfig


def _option_lines(model: type[BaseModel], prefix: str = "") -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.extend(_option_lines(annotation, f"{prefix}{name}."))
            continue
        default = field.get_default(call_default_factory=True)
        lines.append(f"--{prefix}{name}=VALUE  [default: {default}]\b\n    {field.description or ''}")
    return lines


def config_options_help() -> str:
    """Click epilog listing every `--KEY=VALUE` override (\\b keeps click from rewrapping it)."""
    lines = _option_lines(SimpoConfig)
    return "\b\nConfig overrides (--KEY=VALUE):\n" + "\n".join(line.replace("\b\n", "\n") for line in lines)
