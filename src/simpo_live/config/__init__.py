"""Typed run configuration: schema, presets, YAML + dotted-override loading."""

from simpo_live.config.load import ConfigError, config_digest, config_to_yaml, load_config
from simpo_live.config.schema import SimpoConfig

__all__ = ["ConfigError", "SimpoConfig", "config_digest", "config_to_yaml", "load_config"]
