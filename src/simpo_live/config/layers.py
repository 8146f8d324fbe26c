"""Config layers (the embedded preset, a YAML file, dotted overrides) and where each key came from.

Each layer is a nested dict plus `origins`, dotted key -> a label such as `run.yaml:3` or `--beta=2.5`, so an
error or `--help` can say which file line or argument set a value. A file may write keys dotted, as the seed's
design note does (`trainer.num_train_steps: 200`), or nested; both mean the same. Reading a file never raises
anything but a `ConfigError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simpo_live.errors import UserError


class ConfigError(UserError):
    """One or more config problems; the message lists them all."""

    exit_code = 2  # like a usage error: nothing was started

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("config error:\n" + "\n".join(f"  {p}" for p in problems))

    def describe(self) -> str:
        return str(self)  # already reads "config error: ..."


@dataclass
class Layer:
    name: str
    data: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    """Dotted key (sections included) -> where this layer sets it."""


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Dotted key -> 1-based line of that key in a composed YAML mapping."""
    lines: dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        lines[key] = key_node.start_mark.line + 1
        lines.update(_key_lines(value_node, key + "."))
    return lines


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of `path`; a missing file, a directory or another encoding is a ConfigError naming it."""
    if path.is_dir():
        raise ConfigError([f"{path}: is a directory, expected a {what}"])
    if not path.is_file():
        raise ConfigError([f"{path}: {what} not found"])
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read ({e.strerror})"]) from None


def read_yaml_layer(path: str | Path, name: str | None = None) -> Layer:
    path = Path(path)
    text = read_text(path, "config file")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([f"{where}: not valid YAML ({problem})"]) from None
    data = data if data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, got {type(data).__name__}"])
    label = name or str(path)
    lines = _key_lines(node) if node is not None else {}
    origins = {key: f"{label}:{line}" for key, line in lines.items()}
    problems: list[str] = []
    data = _expand_dotted(data, "", origins, problems)
    if problems:
        raise ConfigError(problems)
    return Layer(label, data, origins)


def _expand_dotted(mapping: dict[Any, Any], prefix: str, origins: dict[str, str], problems: list[str]) -> dict:
    """`{"trainer.seed": 1}` -> `{"trainer": {"seed": 1}}`, at every level. A section made by a dotted key gets
    that key's line; a key written twice (dotted and nested) is a problem naming it."""
    expanded: dict[Any, Any] = {}
    for key, value in mapping.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            value = _expand_dotted(value, full + ".", origins, problems)
        parts = key.split(".") if isinstance(key, str) else [key]
        node = expanded
        for i, part in enumerate(parts[:-1]):
            origins.setdefault(prefix + ".".join(parts[: i + 1]), origins.get(full, ""))
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        last = parts[-1]
        if not isinstance(node, dict) or (last in node and not (isinstance(node[last], dict) and
                                                               isinstance(value, dict))):
            problems.append(f"{origins.get(full, full)}: {full}: set twice in this file (once dotted, once nested)")
            continue
        node[last] = deep_merge(node[last], value) if last in node else value
    return expanded


def parse_override_layer(args: list[str]) -> Layer:
    """`--a.b=1 --c=[1,2]` -> {"a": {"b": 1}, "c": [1, 2]}; values are parsed as YAML scalars/lists."""
    tree: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems = []
    for arg in args:
        if not arg.startswith("--") or "=" not in arg or arg.startswith("--="):
            problems.append(f"{arg}: overrides look like --section.key=value")
            continue
        key, raw = arg[2:].split("=", 1)
        value, problem = _parse_value(raw)
        if problem:
            problems.append(f"{arg}: {problem}")
            continue
        parts = key.split(".")
        if any(not part for part in parts):
            problems.append(f"{arg}: {key!r} is not a dotted key (empty part)")
            continue
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"{arg}: conflicts with another override")
                break
        else:
            node[parts[-1]] = value
            for i in range(1, len(parts) + 1):
                origins[".".join(parts[:i])] = arg
    if problems:
        raise ConfigError(problems)
    return Layer("--overrides", tree, origins)


def _parse_value(raw: str) -> tuple[Any, str | None]:
    """(value, problem): YAML for lists, numbers, booleans and null; anything else is the string itself."""
    if raw == "":
        return None, None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        if raw.lstrip().startswith(("[", "{")):
            return None, f"malformed list or mapping {raw!r} ({getattr(e, 'problem', None) or 'YAML error'})"
        return raw, None
    if isinstance(value, dict) and not raw.lstrip().startswith("{"):
        return raw, None  # "reverse: a b" is a string with a colon, not a one-key mapping
    return value, None


def merge_layers(layers: list[Layer]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
    return merged


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def setting_of(layers: list[Layer], key: str) -> tuple[int, str] | None:
    """(index of the layer that last set `key`, or a section above it to a non-mapping; where it did), or None for
    a schema default. Layer 0 is the embedded preset: anything higher is the user's own input."""
    parts = key.split(".")
    for index in range(len(layers) - 1, -1, -1):
        layer = layers[index]
        if key in layer.origins:
            return index, layer.origins[key]
        for i in range(len(parts) - 1, 0, -1):
            section = ".".join(parts[:i])
            if section in layer.origins and not isinstance(value_at(layer.data, section), dict):
                return index, layer.origins[section]
    return None


def origin_of(layers: list[Layer], key: str) -> str | None:
    """Where `key` was last set (or a section above it, set to a non-mapping); None for a schema default."""
    found = setting_of(layers, key)
    return found[1] if found else None


_MISSING = object()


def value_at(tree: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    """The value of dotted `key` in a nested dict (`default`, or _MISSING, when absent)."""
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def sets_key(layer: Layer, key: str) -> bool:
    return value_at(layer.data, key) is not _MISSING
