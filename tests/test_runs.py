"""hive/runs.py: the one reader and writer of outputs/<run>/ and exports/<name>/ - typed records that fail loudly,
one way to name a run, the newest run, complete checkpoints, and the stated precedence of a run's own settings."""

import json
import os

import pytest

from hive import paths, runs
from hive.config import load_config
from hive.errors import HiveError


def test_records_round_trip_with_nested_parts(tmp_path):
    record = runs.RunRecord(base_model="m", max_seq_length=256, load_in_4bit=True, system_prompt="be Sam",
                            train=runs.DataFile("t.jsonl", "ab", 10, 900, 1), losses=[[1, 2.5]])
    record.save(tmp_path)
    (tmp_path / "final_model").mkdir()
    (tmp_path / "final_model" / "adapter_config.json").write_text("{}")
    assert runs.load_run(tmp_path, tmp_path.parent).record == record
    export = runs.ExportRecord(name="x", run="r", base_model="m", max_seq_length=256,
                               artifacts=[runs.Artifact("gguf q8_0", "x-q8_0.gguf", 10, 1.0, "ok")])
    export.save(tmp_path)
    assert runs.ExportRecord.load(tmp_path) == export


def test_a_renamed_or_missing_key_fails_loudly_naming_the_stage(tmp_path):
    folder = tmp_path / "outputs" / "r"
    (folder / "final_model").mkdir(parents=True)
    (folder / "final_model" / "adapter_config.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"base_model": "m", "max_len": 256, "load_in_4bit": False}))
    with pytest.raises(HiveError, match=r"run.json is incomplete or from an older Hive \(run.json.max_seq_length "
                                        r"is missing or malformed\); run train.py again"):
        runs.load_run(folder, tmp_path / "outputs")
    (folder / "run.json").write_text("{not json")
    with pytest.raises(HiveError, match="not valid JSON.*train.py"):
        runs.load_run(folder, tmp_path / "outputs")
    with pytest.raises(HiveError, match="export.json not found.*export_model.py"):
        runs.ExportRecord.load(tmp_path)


def test_one_way_to_name_a_run(project):
    outputs = project / "outputs"
    assert runs.run_dir("demo", outputs) == outputs / "demo"
    assert runs.run_dir("outputs/demo", outputs) == outputs / "demo"
    assert runs.run_dir("elsewhere/demo", outputs) == project / "elsewhere" / "demo"
    assert runs.run_dir(str(project / "x"), outputs) == project / "x"
    assert runs.spelling(outputs / "demo", outputs) == "demo"
    assert runs.spelling(project / "elsewhere" / "demo", outputs) == "elsewhere/demo"
    assert paths.display("/somewhere/else") == "/somewhere/else"


def test_the_newest_run_and_the_final_model_folder_name_the_run(project, fake_run):
    old, new = fake_run("old"), fake_run("new")
    os.utime(old / "run.json", (1, 1))
    assert runs.load_run(None, project / "outputs").folder == new
    assert runs.load_run(new / "final_model", project / "outputs").folder == new
    assert runs.load_run("old", project / "outputs").folder == old
    with pytest.raises(HiveError, match="train.py"):
        runs.newest_run(project / "nothing")


def test_a_run_keeps_its_own_context_unless_the_command_line_says_otherwise(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  max_seq_length: 4096\n")  # a later edit of the YAML is for new runs
    assert runs.max_seq_length(512, load_config(config)) == 512
    assert runs.max_seq_length(512, load_config(config, {"model.max_seq_length": 256})) == 256
