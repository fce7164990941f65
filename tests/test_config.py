"""The config loader: precedence, type checks, every problem listed with a suggestion, the shipped YAML."""

import dataclasses
import re

import pytest
import yaml

from hive.config import SECTIONS, Config, load_config
from hive.errors import ConfigError, HiveError
from tests.conftest import REPO


def test_shipped_yaml_loads_and_matches_the_defaults_schema():
    data = yaml.safe_load((REPO / "training_config.yaml").read_text())
    assert set(data) == set(SECTIONS)
    for section, cls in SECTIONS.items():
        assert set(data[section]) == {f.name for f in dataclasses.fields(cls)}, section
    load_config(REPO / "training_config.yaml")


def test_shipped_yaml_holds_the_built_in_defaults():
    """One set of defaults: a stage run without training_config.yaml behaves as one run with it as shipped."""
    assert load_config(REPO / "training_config.yaml").to_dict() == Config().to_dict()


def test_every_yaml_key_is_commented():
    for line in (REPO / "training_config.yaml").read_text().splitlines():
        if re.match(r"^  [a-z_]+:", line):
            assert "#" in line, f"key without a comment: {line.strip()}"


def test_precedence_defaults_yaml_overrides(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("training:\n  learning_rate: 1.0e-5\n  seed: 7\n")
    cfg = load_config(file, {"training.seed": 9, "convert.mode": "sliding"})
    assert cfg.training.learning_rate == 1e-5
    assert cfg.training.seed == 9
    assert cfg.convert.mode == "sliding"
    assert cfg.lora.r == 16


def test_all_problems_listed_with_suggestions(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("extract:\n  mee: [Sam]\ntrainig:\n  seed: 1\nlora:\n  r: sixteen\n")
    with pytest.raises(ConfigError) as e:
        load_config(file, {"convert.mode": "chat"})
    text = str(e.value)
    assert "extract.mee: unknown key; did you mean extract.me?" in text
    assert "trainig: unknown section; did you mean training?" in text
    assert "lora.r: expected int, got 'sixteen'" in text
    assert "convert.mode: expected 'reply' | 'sliding', got 'chat'" in text
    assert len(e.value.problems) == 4


def test_scientific_notation_without_dot_is_a_float():
    assert load_config(None, {"training.learning_rate": "1e-4"}).training.learning_rate == 1e-4


def test_missing_config_file_is_one_clear_error(tmp_path):
    with pytest.raises(HiveError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
