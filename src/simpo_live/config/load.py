"""Build a `SimpoConfig` from the embedded default preset, an optional YAML file and dotted overrides.

A config file needs only the keys it changes. Every problem is reported at once, each naming the full
key path and what was expected; unknown keys come with the nearest valid key.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simpo_live.config.schema import SimpoConfig

PRESETS = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = PRESETS / "default.yaml"


class ConfigError(ValueError):
    """One or more config problems; the message lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("config error:\n" + "\n".join(f"  {p}" for p in problems))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid YAML ({e})"]) from e
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, got {type(data).__name__}"])
    return data


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`--a.b=1 --c=[1,2]` -> {"a": {"b": 1}, "c": [1, 2]}; values are parsed as YAML scalars/lists."""
    tree: dict[str, Any] = {}
    problems = []
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            problems.append(f"{arg}: overrides look like --section.key=value")
            continue
        key, raw = arg[2:].split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, dict) and not raw.lstrip().startswith("{"):
            value = raw  # "reverse: a b" is a string with a colon, not a one-key mapping
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"{key}: conflicts with another override")
                break
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError(problems)
    return tree


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of the config tree, sections included."""
    keys = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(all_keys(annotation, path + "."))
    return keys


def _format_location(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def describe_errors(error: ValidationError) -> list[str]:
    valid_keys = all_keys(SimpoConfig)
    problems = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("literal[", "function-"))))
        where = _format_location(loc)
        if err["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(where, valid_keys, n=1, cutoff=0.5)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(f"{where}: unknown key{suggestion}")
        elif err["type"] == "value_error" and not where:
            problems.append(err["msg"].removeprefix("Value error, "))
        else:
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message} (got {err.get('input')!r})" if where else message)
    return problems


def load_config(config_file: str | Path | None = None, overrides: list[str] | None = None) -> SimpoConfig:
    """Default preset, then `config_file`, then `overrides`; validated once."""
    data = read_yaml(DEFAULT_PRESET)
    if config_file is not None:
        data = deep_merge(data, read_yaml(config_file))
    data = deep_merge(data, parse_overrides(overrides or []))
    try:
        return SimpoConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_errors(e)) from None


def config_to_yaml(config: SimpoConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_digest(config: SimpoConfig) -> str:
    """Short stable hash of the resolved config, recorded in every generated row."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
