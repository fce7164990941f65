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


def test_values_out_of_range_are_listed_together_before_any_work(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("training:\n  learning_rate: -1\n  max_steps: 0\nmodel:\n  max_seq_length: 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(file, {"generation.top_p": 1.5, "convert.validation_fraction": 0.9,
                           "training.max_tokens_per_pass": 0})
    assert e.value.problems == [
        "training.learning_rate: must be > 0 and <= 1, got -1.0",
        "training.max_steps: must be >= 1 (or -1), got 0",
        "model.max_seq_length: must be >= 16, got 0",
        "generation.top_p: must be > 0 and <= 1, got 1.5",
        "convert.validation_fraction: must be >= 0.0 and <= 0.5, got 0.9",
    ]  # max_tokens_per_pass 0 is allowed: it means "no limit"


def test_keys_that_contradict_each_other():
    with pytest.raises(ConfigError, match="min_reply_chars \\(50\\) is above convert.max_reply_chars \\(10\\)"):
        load_config(None, {"convert.min_reply_chars": 50, "convert.max_reply_chars": 10})


def test_every_shipped_default_is_in_range():
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if "range" in f.metadata:
                load_config(None, {f"{section}.{f.name}": f.default})


def test_invalid_yaml_names_the_line_and_column(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("training:\n  seed: 1\n  learning_rate: [1e-4\nlora:\n  r: 8\n")
    with pytest.raises(HiveError, match=rf"{re.escape(str(file))}:4:5: not valid YAML "
                                        r"\(expected .,. or .\]., .*\); fix that line"):
        load_config(file)


def test_settings_from_the_command_line_are_known_as_such(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("model:\n  max_seq_length: 1024\n")
    cfg = load_config(file, {"generation.seed": 3})
    assert cfg.from_command_line("generation.seed") and not cfg.from_command_line("model.max_seq_length")
    assert "command_line" not in cfg.to_dict() and set(cfg.to_dict()) == set(SECTIONS)


@pytest.mark.parametrize("script, argv, slow_work", [
    ("train", ["--set", "training.learning_rate=-1"], "training.train"),
    ("convert", ["--set", "model.max_seq_length=0"], "load_counter"),
])
def test_a_stage_stops_on_a_bad_value_before_loading_anything(project, script, argv, slow_work, capsys, monkeypatch):
    import importlib

    from hive.cli import run

    module = importlib.import_module(script)

    def never(*args, **kwargs):
        raise AssertionError(f"{slow_work} ran before the configuration was checked")

    target = importlib.import_module("hive.training") if slow_work == "training.train" else module
    monkeypatch.setattr(target, slow_work.split(".")[-1], never)
    assert run(lambda: module.main(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 1 problem(s) in configuration:") and "must be" in err
