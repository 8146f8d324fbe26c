"""`--help` text for every config key: the value it will have for these arguments, where that value comes from
(the schema, the embedded preset's line, the config file's line or an override) and the field docstring."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from simpo_live.config.layers import ConfigError, Layer, origin_of, value_at
from simpo_live.config.load import config_layers, validate_layers
from simpo_live.config.schema import SimpoConfig


def split_config_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(--config FILE, the --KEY=VALUE overrides) out of a command's raw arguments."""
    config_file, overrides, i = None, [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--config" and i + 1 < len(args):
            config_file, i = args[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            config_file = arg.split("=", 1)[1]
        elif arg.startswith("--") and "=" in arg:
            overrides.append(arg)
        i += 1
    return config_file, overrides


def _option_lines(model: type[BaseModel], values: dict[str, Any], layers: list[Layer], prefix: str = "") -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.extend(_option_lines(annotation, values, layers, key + "."))
            continue
        value = value_at(values, key)
        source = origin_of(layers, key) or "schema default"
        description = " ".join((field.description or "").split())
        lines.append(f"--{key}=VALUE  [{json.dumps(value)}, from {source}]\n    {description}")
    return lines


def config_options_help(config_file: str | None = None, overrides: list[str] | None = None) -> str:
    """Every `--KEY=VALUE` override with its resolved value and source (written as is, not rewrapped)."""
    note = ""
    try:
        layers = config_layers(config_file, overrides)
        values = validate_layers(layers).model_dump(mode="json")
    except ConfigError as e:
        note = f"(these arguments do not load, so the values shown ignore them: {e.problems[0]})\n"
        layers = config_layers()
        values = validate_layers(layers).model_dump(mode="json")
    lines = _option_lines(SimpoConfig, values, layers)
    return "Config keys (--KEY=VALUE): the value each will have, and where it comes from\n" + note + \
        "\n".join(lines)
