from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dataset.config_loader import ConfigError, config_to_dict, load_config


@dataclass(frozen=True, kw_only=True, slots=True)
class WriterCfg:
    max_samples: int = 10
    name: str = "shard"

    def __post_init__(self) -> None:
        if self.max_samples < 1:
            raise ValueError(f"writer.max_samples must be >= 1, got {self.max_samples}")


@dataclass(frozen=True, kw_only=True, slots=True)
class RootCfg:
    writer: WriterCfg = field(default_factory=WriterCfg)
    rate: float = 0.5


def test_precedence_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("writer:\n  max_samples: 20\nrate: 0.25\n")
    cfg = load_config(RootCfg, path, ["rate=0.75"])
    assert cfg == RootCfg(writer=WriterCfg(max_samples=20), rate=0.75)
    assert isinstance(cfg.writer, WriterCfg)
    assert config_to_dict(cfg) == {"writer": {"max_samples": 20, "name": "shard"}, "rate": 0.75}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["writer.bogus=1"], "unknown config key 'writer.bogus'"),
        (["writer.max_samples=abc"], "invalid value for 'writer.max_samples'"),
        (["writer.max_samples=0"], "writer.max_samples must be >= 1, got 0"),
        (["nokey"], "override 'nokey' is not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key_and_value(overrides, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(RootCfg, None, overrides)


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("writer:\n  max_sample: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config key 'writer\.max_sample'"):
        load_config(RootCfg, path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(RootCfg, tmp_path / "nope.yaml")


def test_configs_are_frozen():
    cfg = load_config(RootCfg)
    with pytest.raises(AttributeError):
        cfg.rate = 1.0  # type: ignore[misc]
