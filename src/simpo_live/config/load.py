"""Build a `SimpoConfig` from the embedded default preset, an optional YAML file and dotted overrides.

A config file needs only the keys it changes. Every problem is reported at once, each naming the full
key path, what was found and expected, and the file line or argument that set it; unknown keys come with the
nearest valid key. A config file that sets no `trainer.run_dir` gets `runs/<file stem>`, its own directory.
Within a one-of group (a prompt source...) a later layer's member replaces inherited ones (`one_of.py`); inputs
the run would ignore are errors or warnings (`ignored.py`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simpo_live.config.ignored import find_ignored_inputs
from simpo_live.config.layers import (
    ConfigError,
    Layer,
    merge_layers,
    origin_of,
    parse_override_layer,
    read_yaml_layer,
    sets_key,
)
from simpo_live.config.one_of import Choice, choose_one_of
from simpo_live.config.schema import SimpoConfig

PRESETS = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = PRESETS / "default.yaml"
# Keys that were renamed: old dotted key -> (new key, why). A config that still sets the old key gets one line
# naming the new one; a saved config.yaml from before the rename is read under the new name.
RENAMED_KEYS = {
    "trainer.eval_every": ("trainer.validate_every",
                           "validation metrics; inference_eval.eval_every schedules the generation eval"),
}

__all__ = ["ConfigError", "ResolvedConfig", "config_digest", "config_layers", "config_to_yaml", "load_config",
           "rename_old_keys", "resolve_config", "resolve_layers", "validate_layers"]


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


VALID_KEYS = all_keys(SimpoConfig)
# Leaf keys named in a cross-field message, longest first so a dotted key wins over its last part.
_LEAF_KEYS = [k for k in VALID_KEYS if not any(other.startswith(k + ".") for other in VALID_KEYS)]
_MENTIONED_KEY = re.compile("|".join(rf"(?<![\w.]){re.escape(k)}(?![\w])"
                                     for k in sorted(_LEAF_KEYS, key=len, reverse=True)))


def _format_location(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _with_origin(problem: str, where: str, layers: list[Layer]) -> str:
    """Prefix the file line or argument that set `where`; for a rule over several keys, name where each came from."""
    origin = origin_of(layers, re.sub(r"\[\d+\]", "", where)) if where else None
    if origin is not None:
        return f"{origin}: {problem}"
    mentioned = dict.fromkeys(m.group(0) for m in _MENTIONED_KEY.finditer(problem))
    sources = [f"{key} from {origin_of(layers, key)}" for key in mentioned if origin_of(layers, key)]
    return f"{problem} ({'; '.join(sources)})" if sources else problem


def describe_errors(error: ValidationError, layers: list[Layer] | None = None) -> list[str]:
    layers = layers or []
    problems = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("literal[", "function-"))))
        where = _format_location(loc)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and where in RENAMED_KEYS:
            new_key, meaning = RENAMED_KEYS[where]
            problems.append(_with_origin(f"{where}: renamed to {new_key} ({meaning})", where, layers))
        elif err["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(where, VALID_KEYS, n=1, cutoff=0.5)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(_with_origin(f"{where}: unknown key{suggestion}", where, layers))
        elif err["type"] == "value_error" and re.sub(r"\[\d+\]", "", where) not in _LEAF_KEYS:
            # A rule over several fields: its message names the keys; the input is a whole section.
            problems.append(_with_origin(message, "", layers))
        else:
            found = err.get("input")
            problems.append(_with_origin(f"{where}: {message} (got {found!r})" if where else message, where, layers))
    return problems


def rename_old_keys(tree: dict[str, Any]) -> dict[str, Any]:
    """`tree` (a saved config) with every renamed key moved to its new name, unless the new one is set too."""
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in tree.items()}
    for old, (new, _) in RENAMED_KEYS.items():
        (old_section, old_key), (new_section, new_key) = old.split("."), new.split(".")
        section = tree.get(old_section)
        if isinstance(section, dict) and old_key in section:
            value = section.pop(old_key)
            target = tree.setdefault(new_section, {})
            if isinstance(target, dict):
                target.setdefault(new_key, value)
    return tree


def config_layers(config_file: str | Path | None = None, overrides: list[str] | None = None) -> list[Layer]:
    """The preset, the file, the default run_dir of the file, the overrides: lowest precedence first."""
    layers = [read_yaml_layer(DEFAULT_PRESET, "preset default.yaml")]
    if config_file is not None:
        layers.append(read_yaml_layer(config_file))
    override_layer = parse_override_layer(overrides or [])
    if config_file is not None and not any(sets_key(layer, "trainer.run_dir") for layer in layers[1:] + [override_layer]):
        stem = Path(config_file).stem
        layers.append(Layer(f"--config {config_file} (its own run directory)",
                            {"trainer": {"run_dir": f"runs/{stem}"}},
                            {"trainer.run_dir": f"--config {config_file} (runs/<file stem>)"}))
    layers.append(override_layer)
    return layers


SECTIONS = [k for k in VALID_KEYS if k not in _LEAF_KEYS]


def check_sections(layers: list[Layer]) -> None:
    """A section set to anything but a mapping is an error (merging would silently drop it); an empty one
    (`trainer:` with nothing under it) means no keys."""
    problems = []
    for layer in layers:
        for section in SECTIONS:
            value = layer.data.get(section, {})
            if value is None:
                layer.data[section] = {}
            elif not isinstance(value, dict):
                where = layer.origins.get(section, layer.name)
                problems.append(f"{where}: {section}: must be a mapping of keys, got {type(value).__name__} "
                                f"({value!r})")
    if problems:
        raise ConfigError(problems)


@dataclass(frozen=True)
class ResolvedConfig:
    config: SimpoConfig
    layers: list[Layer]
    """The layers as merged: every member a one-of choice replaced is gone from them."""
    choices: list[Choice]
    warnings: list[str]
    """Inputs the run will not use although the run is still what was asked; the CLI prints them once."""


def resolve_layers(layers: list[Layer]) -> ResolvedConfig:
    """Choose each one-of group's member, validate the merge once, then refuse or report ignored inputs."""
    check_sections(layers)
    layers, choices, problems = choose_one_of(layers)
    try:
        config = SimpoConfig.model_validate(merge_layers(layers))
    except ValidationError as e:
        raise ConfigError(problems + describe_errors(e, layers)) from None
    if problems:
        raise ConfigError(problems)
    findings = find_ignored_inputs(config, layers)
    if findings.errors:
        raise ConfigError(findings.errors)
    return ResolvedConfig(config, layers, choices, findings.warnings)


def resolve_config(config_file: str | Path | None = None, overrides: list[str] | None = None) -> ResolvedConfig:
    """Default preset, then `config_file`, then `overrides`, resolved: the config, its choices and warnings."""
    return resolve_layers(config_layers(config_file, overrides))


def validate_layers(layers: list[Layer]) -> SimpoConfig:
    return resolve_layers(layers).config


def load_config(config_file: str | Path | None = None, overrides: list[str] | None = None) -> SimpoConfig:
    """Default preset, then `config_file`, then `overrides`; validated once (warnings are the CLI's to print)."""
    return resolve_config(config_file, overrides).config


def config_to_yaml(config: SimpoConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_digest(config: SimpoConfig) -> str:
    """Short stable hash of the resolved config, recorded in every generated row."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
