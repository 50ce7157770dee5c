"""Layered config loading: dataclass defaults, then a YAML file, then `key=value` overrides.

Every component owns a frozen `XConfig` dataclass that validates itself in `__post_init__`;
this module only merges values (with OmegaConf, which rejects unknown keys and ill-typed
values) and turns library errors into one line naming the key and the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dataset.errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A config file or override is invalid; the message names the key and the value."""


def _describe(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    if type(err).__name__ == "ConfigKeyError":
        return f"unknown config key '{key}'"
    return f"invalid value for '{key}': {first_line}" if key else first_line


def parse_overrides(overrides: Sequence[str]) -> Any:
    """Parse `a.b=value` strings; anything without '=' is an error naming the item."""
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override '{item}' is not of the form key=value")
    return OmegaConf.from_dotlist(list(overrides))


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = (), *,
                preset: Mapping[str, Any] | None = None) -> T:
    """Build `cls` from its defaults, a preset, an optional YAML file and `key=value` overrides.

    Args:
        cls: a (frozen) dataclass type, possibly with nested dataclass fields.
        path: YAML file with values for some of the fields.
        overrides: dotlist strings such as `writer.max_samples=100`.
        preset: nested values applied before the YAML file (e.g. a command's named preset).

    Raises:
        ConfigError: unknown key, value of the wrong type, or a `__post_init__` check failing.
        FileNotFoundError: `path` does not exist.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    layers = [OmegaConf.structured(cls)]
    where = "defaults"
    try:
        if preset:
            where = "preset"
            layers.append(OmegaConf.create(dict(preset)))
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"config file not found: {path}")
            where = str(path)
            loaded = OmegaConf.load(path)
            if not OmegaConf.is_dict(loaded):
                raise ConfigError(f"{path}: top level must be a mapping of keys to values")
            layers.append(loaded)
        if overrides:
            where = "command line"
            layers.append(parse_overrides(overrides))
        merged = OmegaConf.merge(*layers)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]  # runs __post_init__
    except OmegaConfBaseException as err:
        raise ConfigError(f"{where}: {_describe(err)}") from None
    except ValueError as err:  # a component's __post_init__ check; it names its own key
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}: {err}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (for provenance, logs and hashing)."""
    return dataclasses.asdict(cfg)


def config_to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
