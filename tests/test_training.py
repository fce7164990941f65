"""train.py / hive.training: data checks, the label mask, padding-free rows, real training of the bundled SmolLM2
(loss, outputs, reload, resume, Ctrl-C), and on CUDA the Unsloth and 4-bit paths.

    python -m pytest -q tests/test_training.py -m "not slow"     # seconds
    python -m pytest -q tests/test_training.py                   # + real training on CPU (a few minutes on 2 cores)
    python -m pytest -q tests/test_training.py -m gpu            # CUDA only: Unsloth and 4-bit
"""

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest

import train
from hive import batching, runs, training
from hive.config import load_config
from hive.errors import HiveError
from tests.conftest import REPO

CHATS = [
    ("hey, are we still on for dinner tonight?", "yes!! 7pm at luigi's 🍝"),
    ("did you see the game last night", "nah missed it, who won?"),
    ("can you send me the notes", "sure, sending now"),
    ("happy birthday!!", "thank youuu 🥳"),
    ("where are you", "on the bus, 5 min"),
    ("want to grab coffee tomorrow?", "yes pls, 10am?"),
    ("lol that meme", "😂😂 i can't"),
    ("are you coming to the party", "maybe, depends on work"),
]
CUDA = importlib.util.find_spec("torch") is not None and __import__("torch").cuda.is_available()


def write_samples(path, n, system=None, context=False):
    """n reply samples cycling through CHATS; every third one with an earlier exchange as context."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            user, me = CHATS[i % len(CHATS)]
            messages = [{"role": "system", "content": system}] if system else []
            if context and i % 3 == 0:
                messages += [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "heyy"}]
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": me}]
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return path


def tiny_settings(root, model, **extra):
    """Overrides for a small, fast run writing under `root`."""
    return {
        "paths.final": str(root / "data" / "personality.jsonl"), "paths.outputs": str(root / "outputs"),
        "model.base_model": str(model), "model.max_seq_length": 128, "training.per_device_train_batch_size": 4,
        "training.learning_rate": 2e-3, "training.warmup_steps": 0, "training.logging_steps": 1,
        "training.eval_steps": 2, "training.save_steps": 2, "training.save_total_limit": 2, **extra,
    }


# ---------------------------------------------------------------- fast: data, folders, plan


def test_missing_training_data_names_convert(project):
    with pytest.raises(HiveError, match=r"personality\.jsonl \(it is written by convert\.py"):
        train.main(["--run", "x"])
    assert not (project / "outputs" / "x").exists()


def test_validation_file_is_optional_and_empty_means_none(project):
    cfg = load_config()
    write_samples(project / "dataset" / "final" / "personality.jsonl", 2)
    assert training.data_files(cfg)[1] is None
    val = project / "dataset" / "final" / "personality.val.jsonl"
    val.write_text("")
    assert training.data_files(cfg)[1] is None
    write_samples(val, 1)
    assert training.data_files(cfg)[1] == val


def checkpoint(run_dir, step, complete=True):
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("model card")
    if complete:
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        (folder / "trainer_state.json").write_text("{}")
    return folder


def test_run_folders_new_existing_and_resume(project):
    cfg, named = load_config(), load_config(None, {"training.run_name": "a"})
    run_dir, ckpt = training.run_folder(named, None, 1)
    assert (run_dir, ckpt) == (project / "outputs" / "a", None)
    with pytest.raises(HiveError, match="no complete checkpoint"):
        training.run_folder(named, "latest", 1)
    for step in (5, 10):
        checkpoint(run_dir, step)
    with pytest.raises(HiveError, match="--resume"):
        training.run_folder(named, None, 1)
    assert training.run_folder(named, "latest", 1) == (run_dir, run_dir / "checkpoint-10")
    assert training.run_folder(cfg, "latest", 1) == (run_dir, run_dir / "checkpoint-10")
    assert training.run_folder(cfg, str(run_dir / "checkpoint-5"), 1) == (run_dir, run_dir / "checkpoint-5")
    with pytest.raises(HiveError, match="not a complete training checkpoint"):
        training.run_folder(cfg, str(run_dir), 1)
    with pytest.raises(HiveError, match="--run NAME"):
        training.run_folder(cfg, None, 2)
    in_a_folder = load_config(None, {"training.run_name": "elsewhere/b"})
    assert training.run_folder(in_a_folder, None, 1) == (project / "elsewhere" / "b", None)


def test_a_half_written_checkpoint_is_never_resumed_and_does_not_block_a_new_start(project):
    """What kill -9 (or the end of a Kaggle session) left in older versions: checkpoint-4 with only a README."""
    named = load_config(None, {"training.run_name": "k"})
    run_dir = project / "outputs" / "k"
    checkpoint(run_dir, 4, complete=False)
    assert runs.checkpoints(run_dir) == [] and runs.incomplete_checkpoints(run_dir) == [run_dir / "checkpoint-4"]
    with pytest.raises(HiveError, match="no complete checkpoint"):
        training.run_folder(named, "latest", 1)
    assert training.run_folder(named, None, 1) == (run_dir, None)  # starting over is allowed
    checkpoint(run_dir, 2)
    (run_dir / runs.SAVING / "checkpoint-6").mkdir(parents=True)  # a save cut off mid-way
    assert training.run_folder(named, "latest", 1) == (run_dir, run_dir / "checkpoint-2")
    assert runs.remove_incomplete(run_dir) == ["checkpoint-4", runs.SAVING]
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint-2"]


def test_a_failed_unsloth_run_continues_with_transformers_from_its_checkpoint(project):
    run_dir = project / "outputs" / "u"
    error = training.BackendFailed("RuntimeError: Triton kernel failed", run_dir)
    assert "--set training.backend=transformers" in str(error) and "--resume" in str(error)
    argv = ["train.py", "--max-steps", "9"]
    assert training.fallback_argv(argv, error) == [*argv, "--set", "training.backend=transformers",
                                                   "--run", str(run_dir)]
    checkpoint(run_dir, 3)
    assert training.fallback_argv(argv, error)[-1] == "--resume"
    assert training.fallback_argv([*argv, "--resume"], error).count("--resume") == 1


@pytest.mark.skipif(CUDA, reason="describes a machine without CUDA")
def test_plan_without_cuda(monkeypatch):
    cfg = load_config()
    plan = training.make_plan(cfg)
    assert (plan.device, plan.precision, plan.load_in_4bit, plan.optim) == ("cpu", "fp32", False, "adamw_torch")
    assert plan.backend == "transformers" and not plan.padding_free  # packing: auto pads on CPU
    cfg.training.packing = True
    assert training.make_plan(cfg).padding_free
    assert any("4-bit" in n for n in plan.notices)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "unsloth" else real_find_spec(name, *a))
    cfg.training.backend = "unsloth"
    with pytest.raises(HiveError, match="Unsloth is not installed"):
        training.make_plan(cfg)


def test_plan_on_a_gpu_where_unsloth_does_not_start_and_bitsandbytes_is_missing(monkeypatch):
    """Kaggle after a failed install: Unsloth present but broken, no bitsandbytes. Training still runs, and says why."""
    import torch

    from hive import models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(models, "cuda_half_precision", lambda: "fp16")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else
                        object() if name == "unsloth" else real_find_spec(name, *a))
    monkeypatch.setitem(sys.modules, "unsloth", None)  # import unsloth raises ImportError
    plan = training.make_plan(load_config())
    assert (plan.backend, plan.device, plan.precision, plan.load_in_4bit, plan.optim) == (
        "transformers", "cuda", "fp16", False, "adamw_torch")
    assert any(n.startswith("Unsloth is installed but does not start here") for n in plan.notices)
    assert any("16-bit instead of 4-bit" in n for n in plan.notices)


def test_importing_hive_does_not_import_transformers():
    # Unsloth has to be imported before transformers, peft and trl; hive modules leave that to the backend.
    code = ("import sys, train, hive.training, hive.templates, hive.models; "
            "print(sorted(m for m in ('transformers', 'peft', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- slow: the label mask and padding-free rows


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    from hive import templates

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    templates.apply(tok, "auto")
    return tok


@pytest.mark.slow
def test_label_mask_covers_exactly_the_last_reply_and_its_end_of_turn(tokenizer):
    messages = [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "heyy"},
        {"role": "user", "content": "dinner tonight?"}, {"role": "assistant", "content": "yes!! 7pm 🍝"},
    ]
    row = training.encode(tokenizer, messages, 512, assistant_only=True, eot="<|im_end|>")
    learned = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    reply = tokenizer("yes!! 7pm 🍝", add_special_tokens=False)["input_ids"]
    assert learned == reply + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    # the unmasked tokens are one block at the very end; the earlier reply "heyy" is context
    first = row["labels"].index(learned[0])
    assert row["labels"][first:] == learned and all(x == -100 for x in row["labels"][:first])
    assert tokenizer.decode(row["input_ids"]).startswith("<|im_start|>system\nYou are Sam.<|im_end|>")
    everything = training.encode(tokenizer, messages, 512, assistant_only=False, eot="<|im_end|>")
    assert everything["labels"] == everything["input_ids"] == row["input_ids"]


@pytest.mark.slow
def test_long_context_is_trimmed_oldest_first_and_hopeless_samples_skipped(tokenizer):
    turns = []
    for i in range(20):
        turns += [{"role": "user", "content": f"message number {i} " * 5}, {"role": "assistant", "content": f"ok {i}"}]
    row = training.encode(tokenizer, turns, 128, assistant_only=True, eot="<|im_end|>")
    text = tokenizer.decode(row["input_ids"])
    assert len(row["input_ids"]) <= 128 and "message number 19" in text and "message number 0 " not in text
    assert text.count("<|im_start|>user") >= 1
    huge = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 300}]
    assert training.encode(tokenizer, huge, 128, assistant_only=True, eot="<|im_end|>") is None


@pytest.mark.slow
def test_padding_free_rows_keep_samples_apart(smollm2_dir):
    """Two samples in one padding-free row give exactly the logits they give alone, with the model as training
    loads it (sdpa attention, use_cache off): no attention crosses the sample boundary."""
    import torch

    cfg = load_config(None, {"model.base_model": smollm2_dir})
    plan = training.make_plan(cfg)
    model, tok, _, _ = training.load(cfg, plan)
    model.eval()
    a = tok("hey, are we still on for dinner tonight?")["input_ids"]
    b = tok("nah missed it, who won?")["input_ids"]
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([ids])).logits[0] for ids in (a, b)]
        positions = torch.tensor([list(range(len(a))) + list(range(len(b)))])
        packed = model(input_ids=torch.tensor([a + b]), position_ids=positions).logits[0]
        crossed = model(input_ids=torch.tensor([a + b])).logits[0]  # one long sequence, for contrast
    torch.testing.assert_close(packed[: len(a)], alone[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(packed[len(a):], alone[1], atol=1e-4, rtol=1e-4)
    assert (crossed[len(a):] - alone[1]).abs().max() > 1e-2
    # length-grouped rows pad each sample at its end to its bucket: the sample's own tokens never see the pads
    a_padded, _ = batching.pad_to_bucket(a, a, tok.pad_token_id, bucket=8)
    assert len(a_padded) > len(a)
    with torch.no_grad():
        positions = torch.tensor([list(range(len(a_padded))) + list(range(len(b)))])
        padded = model(input_ids=torch.tensor([a_padded + b]), position_ids=positions).logits[0]
    torch.testing.assert_close(padded[: len(a)], alone[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(padded[len(a_padded):], alone[1], atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- slow: real training on CPU


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smollm2_dir):
    """One epoch, 4 optimizer steps, of the bundled model on 16 samples (batch 4); validation every 2 steps."""
    root = tmp_path_factory.mktemp("train")
    write_samples(root / "data" / "personality.jsonl", 16, system="You are Sam.", context=True)
    write_samples(root / "data" / "personality.val.jsonl", 2)
    cfg = load_config(None, tiny_settings(root, smollm2_dir, **{"training.max_steps": 4, "training.run_name": "t"}))
    return root, training.train(cfg)


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_every_output(trained):
    root, result = trained
    run_dir = root / "outputs" / "t"
    info = runs.load_run(run_dir, root / "outputs").record
    losses = [loss for _, loss in info.losses]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    # batches are grouped by length, so one batch's loss says little about another's: the validation loss (the same
    # samples each time) shows the learning
    (_, first), (_, last) = info.eval_losses
    assert last < first * 0.9, (losses, info.eval_losses)
    assert [step for step, _ in info.eval_losses] == [2, 4] and info.eval_loss == info.eval_losses[-1][1]
    assert info.steps == 4 and info.backend == "transformers" and info.precision == "fp32"
    assert info.system_prompt == "You are Sam." and info.end_of_turn == "<|im_end|>" and info.max_seq_length == 128
    assert info.train.samples == 16 and len(info.train.sha256) == 64
    assert info.validation.samples == 2
    assert info.tokens_seen == info.train.tokens  # one epoch
    assert {"torch", "transformers", "peft", "trl"} <= set(info.versions)
    final = run_dir / "final_model"
    assert (final / "adapter_model.safetensors").is_file() and (final / "chat_template.jinja").is_file()
    assert [p.name for p in runs.checkpoints(run_dir)] == ["checkpoint-2", "checkpoint-4"]
    assert not (run_dir / runs.SAVING).exists()  # every save was renamed into place
    assert (run_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert load_config(run_dir / "config.yaml").training.max_steps == 4
    log = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert sum("loss" in e for e in log) == 4 and sum("eval_loss" in e for e in log) == 2


@pytest.mark.slow
def test_the_adapter_reloads_and_generates(trained, smollm2_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = trained
    final = root / "outputs" / "t" / "final_model"
    tok = AutoTokenizer.from_pretrained(final)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir), final)
    prompt = tok.apply_chat_template([{"role": "system", "content": "You are Sam."},
                                      {"role": "user", "content": "where are you"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert tok.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.slow
def test_resume_continues_from_the_saved_step(trained, smollm2_dir, capsys):
    root, _ = trained
    shutil.copytree(root / "outputs" / "t", root / "outputs" / "r")  # leave the fixture's run as it was
    sets = tiny_settings(root, smollm2_dir, **{"training.max_steps": 6})
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")] + ["--run", "r", "--resume"]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    info = runs.load_run(root / "outputs" / "r", root / "outputs").record
    assert info.resumed_from.endswith("checkpoint-4") and info.steps == 6
    assert [step for step, _ in info.losses] == list(range(1, 7))  # the checkpoint's log history continues
    assert info.tokens_seen == round(0.5 * info.train.tokens)  # epochs 1.0 -> 1.5 this session
    assert "effective batch up to 4 samples per optimizer step" in out
    assert "next: python evaluate.py --run r\n" in out


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_stops(tmp_path, smollm2_dir):
    from transformers import TrainerCallback

    class CtrlCAfterFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    write_samples(tmp_path / "data" / "personality.jsonl", 16)
    # padding-free rows (off by default on CPU), so that path trains for real here too
    cfg = load_config(None, tiny_settings(tmp_path, smollm2_dir, **{"training.max_steps": 4, "training.save_steps": 100,
                                                                     "training.packing": True}))
    cfg.training.run_name = "c"
    result = training.train(cfg, callbacks=[CtrlCAfterFirstStep()])
    assert result.record.padding_free
    run_dir = tmp_path / "outputs" / "c"
    # Hive's callback runs before the test's, so the request made during step 1 is honoured after step 2
    assert result.record.interrupted and result.record.steps == 2
    assert [p.name for p in runs.checkpoints(run_dir)] == ["checkpoint-2"]
    assert not (run_dir / "final_model").exists()
    assert runs.RunRecord.load(run_dir).interrupted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_summary_says_why_there_is_no_validation_loss(project, monkeypatch, capsys):
    record = runs.RunRecord(base_model="m", max_seq_length=128, load_in_4bit=False, steps=2, epochs=0.5,
                            validation=runs.DataFile("v", None, 2, 20), interrupted=True)
    result = training.TrainResult(project / "outputs" / "c", record, project / "outputs" / "c" / "checkpoint-2",
                                  True, 1.0)
    monkeypatch.setattr(training, "train", lambda cfg, resume=None: result)
    assert train.main([]) == 130
    out = capsys.readouterr().out
    assert "validation loss  not computed (interrupted)" in out and "next: python train.py --run c --resume" in out


@pytest.mark.slow
def test_a_save_cut_off_midway_leaves_only_complete_checkpoints_and_resume_takes_the_newest(tmp_path, tiny_llama,
                                                                                        monkeypatch, capsys):
    """What kill -9 (or Kaggle's session limit) does in the middle of writing checkpoint-2: the state on disk is the
    one an exception at that moment leaves."""
    from hive.trainer import HiveTrainer

    write_samples(tmp_path / "data" / "personality.jsonl", 12)
    sets = {"training.max_steps": 3, "training.save_steps": 1, "training.save_total_limit": 5,
            "model.load_in_4bit": False, "training.run_name": "k"}
    real = HiveTrainer._save_rng_state

    def killed_at_step_2(self, output_dir):
        if self.state.global_step == 2:
            raise SystemExit("killed")
        real(self, output_dir)

    monkeypatch.setattr(HiveTrainer, "_save_rng_state", killed_at_step_2)
    with pytest.raises(SystemExit):
        training.train(load_config(None, tiny_settings(tmp_path, tiny_llama, **sets)))
    run_dir = tmp_path / "outputs" / "k"
    assert [p.name for p in run_dir.glob("checkpoint-*")] == ["checkpoint-1"]  # no half-written checkpoint-2
    assert (run_dir / runs.SAVING / "checkpoint-2").is_dir()
    monkeypatch.setattr(HiveTrainer, "_save_rng_state", real)
    argv = [a for k, v in tiny_settings(tmp_path, tiny_llama, **sets).items() for a in ("--set", f"{k}={v}")]
    assert train.main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert f"removed what an interrupted save left behind: {runs.SAVING}" in out and "resuming" in out
    assert [p.name for p in runs.checkpoints(run_dir)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    record = runs.load_run(run_dir, tmp_path / "outputs").record
    assert record.resumed_from.endswith("checkpoint-1") and record.steps == 3
    assert not (run_dir / runs.SAVING).exists()


@pytest.mark.slow
def test_a_second_ctrl_c_before_any_checkpoint_leaves_no_run_folder(tmp_path, tiny_llama):
    from transformers import TrainerCallback

    class CtrlCTwice(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    write_samples(tmp_path / "data" / "personality.jsonl", 8)
    cfg = load_config(None, tiny_settings(tmp_path, tiny_llama, **{
        "training.max_steps": 4, "training.save_steps": 100, "model.load_in_4bit": False, "training.run_name": "q"}))
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, callbacks=[CtrlCTwice()])
    assert not (tmp_path / "outputs" / "q").exists()


@pytest.mark.slow
def test_checkpoints_by_wall_clock_time(tmp_path, tiny_llama):
    """training.save_minutes: a session cut off after N minutes loses at most save_minutes, whatever save_steps is."""
    write_samples(tmp_path / "data" / "personality.jsonl", 12)
    cfg = load_config(None, tiny_settings(tmp_path, tiny_llama, **{
        "training.max_steps": 3, "training.save_steps": 100, "training.save_total_limit": 5,
        "training.save_minutes": 1e-6, "model.load_in_4bit": False, "training.run_name": "m"}))
    training.train(cfg)
    assert [p.name for p in runs.checkpoints(tmp_path / "outputs" / "m")] == ["checkpoint-1", "checkpoint-2",
                                                                                "checkpoint-3"]


# ---------------------------------------------------------------- GPU: Unsloth and 4-bit (run on the lent H100)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer random Llama with a BPE tokenizer and no chat template (so the ChatML fallback is used)."""
    from hive.synthetic import TINY, build_model_dir

    path = build_model_dir(tmp_path_factory.mktemp("tiny") / "llama", [u + " " + m for u, m in CHATS] * 20, TINY, 8192)
    config = path / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    (path / "chat_template.jinja").unlink(missing_ok=True)
    return path


def run_train(root, model, *args, env=None, **sets):
    settings = tiny_settings(root, model, **sets)
    argv = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    done = subprocess.run([sys.executable, str(REPO / "train.py"), *argv, *args], capture_output=True, text=True,
                          cwd=root, timeout=600, env={**os.environ, **(env or {})})
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_grouped_batches_stay_within_the_token_limit_for_a_whole_epoch(tmp_path, tiny_llama, monkeypatch):
    seen = []
    monkeypatch.setattr(batching, "split_passes", lambda inputs, cap, real=batching.split_passes: seen.append(
        tuple(inputs["input_ids"].shape)) or real(inputs, cap))
    write_samples(tmp_path / "data" / "personality.jsonl", 40, context=True)
    cfg = load_config(None, tiny_settings(tmp_path, tiny_llama, **{
        "training.packing": False, "training.per_device_train_batch_size": 8, "training.max_tokens_per_pass": 256,
        "training.num_train_epochs": 1.0, "model.load_in_4bit": False}))
    cfg.training.run_name = "g"
    result = training.train(cfg)
    assert sum(rows for rows, _ in seen) == 40 and result.record.steps == len(seen)
    assert all(rows * width <= 256 for rows, width in seen) and max(rows for rows, _ in seen) > 1, seen


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    "transformers",
    pytest.param("unsloth", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not CUDA or importlib.util.find_spec("unsloth") is None, reason="needs CUDA and Unsloth")]),
])
def test_passes_of_one_batch_give_the_same_step_as_the_whole_batch(tmp_path, tiny_llama, monkeypatch, backend):
    """training.max_tokens_per_pass splits a padded batch (random batches here: grouped ones are drawn to fit) into
    passes: same gradient norm, same next loss."""
    split = []
    monkeypatch.setattr(batching, "split_passes", lambda inputs, cap, real=batching.split_passes: split.append(
        len(parts := real(inputs, cap))) or parts)
    write_samples(tmp_path / "data" / "personality.jsonl", 16, context=True)
    logs = {}
    for cap in (0, 48):
        cfg = load_config(None, tiny_settings(tmp_path, tiny_llama, **{
            "training.backend": backend, "training.packing": False, "training.group_by_length": False,
            "training.per_device_train_batch_size": 8,
            "training.max_steps": 2, "training.max_tokens_per_pass": cap, "training.learning_rate": 1e-2,
            "model.load_in_4bit": False, "training.run_name": f"cap{cap}"}))
        logs[cap] = training.train(cfg).record
    assert max(split) > 1, split  # the capped run did split its batches
    norms = {cap: [json.loads(line).get("grad_norm") for line in
                   (tmp_path / "outputs" / f"cap{cap}" / "trainer_log.jsonl").read_text().splitlines()] for cap in logs}
    norms = {cap: [n for n in found if n is not None] for cap, found in norms.items()}
    assert norms[48] == pytest.approx(norms[0], rel=1e-3), norms
    assert [loss for _, loss in logs[48].losses] == pytest.approx([loss for _, loss in logs[0].losses], rel=1e-3)


# a T4 as far as precision goes: bench/t4/sitecustomize.py makes torch report no bf16, so training runs in fp16
T4 = {"EMULATE_T4": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "bench" / "t4"), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("backend, t4", [("unsloth", False), ("transformers", False), ("unsloth", True),
                                         ("transformers", True)])
def test_gpu_4bit_training(tmp_path, tiny_llama, backend, t4):
    if backend == "unsloth" and importlib.util.find_spec("unsloth") is None:
        pytest.skip("Unsloth is not installed")
    write_samples(tmp_path / "data" / "personality.jsonl", 32)
    write_samples(tmp_path / "data" / "personality.val.jsonl", 4)
    out = run_train(tmp_path, tiny_llama, "--run", "g", env=T4 if t4 else None,
                    **{"training.backend": backend, "training.max_steps": 4, "model.load_in_4bit": True})
    info = runs.load_run(tmp_path / "outputs" / "g", tmp_path / "outputs").record
    assert (info.backend, info.load_in_4bit, info.chat_template) == (backend, True, "chatml")
    assert info.precision == ("fp16" if t4 else "bf16") and info.steps == 4 and info.peak_gpu_gib > 0
    assert all(math.isfinite(loss) for _, loss in info.losses) and info.eval_loss is not None
    assert (tmp_path / "outputs" / "g" / "final_model" / "adapter_model.safetensors").is_file()
    assert "adamw_8bit" in out


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA or importlib.util.find_spec("unsloth") is None, reason="needs CUDA and Unsloth")
def test_gpu_unsloth_padding_free_matches_padded_first_loss(tmp_path, tiny_llama):
    """The first loss (before any update) on the same batch is the same padded and padding-free: Unsloth's packed
    path does not let samples attend to each other."""
    write_samples(tmp_path / "data" / "personality.jsonl", 32, context=True)
    first = {}
    for packing in (True, False):
        run_train(tmp_path, tiny_llama, "--run", f"p{packing}", **{
            "training.backend": "unsloth", "training.max_steps": 1, "training.packing": packing,
            "model.load_in_4bit": False})
        first[packing] = runs.load_run(tmp_path / "outputs" / f"p{packing}", tmp_path / "outputs").record.losses[0][1]
    assert first[True] == pytest.approx(first[False], rel=2e-2), first


def _kernel_arguments(kernel, rows: int, cols: int) -> dict:
    """Arguments for one of TRL's chunked log-prob kernels, by parameter name: an fp16 logits tile, int64 targets,
    float32 row statistics, unit scales, every optional output on."""
    import torch

    tile = torch.randn(rows, cols, device="cuda", dtype=torch.float16)
    values = {"mm_ptr": tile, "mm_stride": tile.stride(0), "targets_ptr": torch.zeros(rows, dtype=torch.int64,
                                                                                      device="cuda"),
              "vocab_start": 0, "n_cols": cols, "logit_scale": 1.0, "softcap": 1.0, "inv_t": 1.0, "BLOCK_SIZE": 1024}
    return {name: values[name] if name in values else name.startswith("HAS_") and name != "HAS_SOFTCAP"
            if name.startswith("HAS_") else torch.zeros(rows, device="cuda") for name in kernel.arg_names}


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA or importlib.util.find_spec("triton") is None, reason="needs CUDA and Triton")
def test_trls_loss_kernels_compile_for_a_t4(monkeypatch):
    """TRL's SFTTrainer computes every training loss on CUDA with Triton kernels (trl.kernels.chunked_logprob, the
    fused LM head). Kaggle's T4 is compute capability 7.5: compile them for sm_75 (there is no T4 here to run them on;
    compiling is what fails when an architecture is unsupported)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from trl.kernels import chunked_logprob

    driver = triton.runtime.driver.active
    monkeypatch.setattr(type(driver), "get_current_target", lambda self: GPUTarget("cuda", 75, 32))
    for kernel in (chunked_logprob._forward_kernel, chunked_logprob._backward_kernel):
        compiled = kernel.warmup(grid=(4, 1), **_kernel_arguments(kernel, 4, 256))
        assert compiled.metadata.target.arch == 75
        assert ".target sm_75" in compiled.asm["ptx"]
