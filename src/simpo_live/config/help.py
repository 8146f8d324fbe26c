"""`--help` text for every config key: the value it will have for these arguments, where that value comes from
(the schema, the embedded preset's line, the config file's line or an override) and the field docstring; and the
resolved config as YAML with each one-of choice (the prompt source...) annotated with the layer that made it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from simpo_live.config.layers import ConfigError, origin_of, value_at
from simpo_live.config.load import ResolvedConfig, config_layers, config_to_yaml, resolve_layers
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


def _source(resolved: ResolvedConfig, key: str) -> str:
    """Where `key`'s value comes from, and the one-of choice it makes or lost."""
    source = origin_of(resolved.layers, key) or "schema default"
    for choice in resolved.choices:
        if choice.key == key:
            replaced = "; ".join(f"{other} from {origin}" for other, origin in choice.replaced)
            return f"from {source}; the {choice.group.what}" + (f", replacing {replaced}" if replaced else "")
        for replaced, origin in choice.replaced:
            if replaced == key:
                return f"set in {origin}, replaced by {choice.key} from {choice.origin}"
    return f"from {source}"


def _option_lines(model: type[BaseModel], values: dict[str, Any], resolved: ResolvedConfig,
                  prefix: str = "") -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.extend(_option_lines(annotation, values, resolved, key + "."))
            continue
        value = value_at(values, key)
        description = " ".join((field.description or "").split())
        lines.append(f"--{key}=VALUE  [{json.dumps(value)}, {_source(resolved, key)}]\n    {description}")
    return lines


def config_options_help(config_file: str | None = None, overrides: list[str] | None = None) -> str:
    """Every `--KEY=VALUE` override with its resolved value and source (written as is, not rewrapped)."""
    note = ""
    try:
        resolved = resolve_layers(config_layers(config_file, overrides))
    except ConfigError as e:
        note = f"(these arguments do not load, so the values shown ignore them: {e.problems[0]})\n"
        resolved = resolve_layers(config_layers())
    lines = _option_lines(SimpoConfig, resolved.config.model_dump(mode="json"), resolved)
    return "Config keys (--KEY=VALUE): the value each will have, and where it comes from\n" + note + \
        "\n".join(lines)


def annotated_config_yaml(resolved: ResolvedConfig) -> str:
    """The resolved config as YAML (what config.yaml holds), with a comment line above each one-of choice naming
    the layer that chose it: `# the prompt source, from my.yaml:7 (replaces ...)`. Still valid YAML."""
    lines = config_to_yaml(resolved.config).splitlines()
    for choice in resolved.choices:
        section, name = choice.key.rsplit(".", 1)
        in_section = False
        for i, line in enumerate(lines):
            if not line.startswith(" "):
                in_section = line == f"{section}:"
            elif in_section and line.startswith(f"  {name}:"):
                lines.insert(i, f"  # {name}: {choice.describe()}")
                break
    return "\n".join(lines) + "\n"
