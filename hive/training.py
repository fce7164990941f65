"""Stage 3: LoRA fine-tuning on dataset/final/personality.jsonl (train.py calls `train`).

Two backends run one pipeline with one config and write the same outputs: `unsloth` (FastLanguageModel: faster
kernels, less memory on CUDA) and `transformers` (Hugging Face + PEFT, any device). TRL's SFTTrainer runs the loop.

Hive tokenizes the samples itself (input_ids + labels) instead of handing TRL conversations: how TRL masks prompts
and packs rows changed between TRL 1.15 and 1.16 and Unsloth patches it again, while a dataset that already has
`labels` passes through both untouched. So the label mask is the same on every backend and is tested directly.

Padding-free batching (training.packing): the samples of a batch are concatenated into one row, with no pad tokens,
and position_ids restart at 0 for each sample. Attention stays within each sample: transformers (>= 5) derives a
block-diagonal mask from such position_ids for eager, sdpa and flex attention and passes them as varlen boundaries to
flash attention, as long as no attention_mask and no KV cache are given (the model is set to use_cache=False here);
Unsloth receives the boundaries from its SFTTrainer patch (packed_seq_lengths). Chat samples are short (median ~60
tokens), so random padded batches spend most of their compute on padding. By default, though, batches are drawn from
samples of similar length within a token limit (training.group_by_length, training.max_tokens_per_pass;
hive/batching.py), and such batches train fastest padded (see make_plan).

Nothing here imports transformers, peft or trl at module level: Unsloth must be imported first when it is used.
"""

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hive import batching, fileio, models, paths, templates
from hive.config import Config
from hive.errors import HiveError, missing_input

ROLES = {"system", "user", "assistant"}
VERSIONED = ["torch", "transformers", "peft", "trl", "datasets", "accelerate", "unsloth", "bitsandbytes"]


@dataclass
class Plan:
    """What a run will do on this machine, decided before anything heavy is loaded."""

    backend: str  # "unsloth" | "transformers"
    device: str  # "cuda" | "cpu"
    precision: str  # "bf16" | "fp16" | "fp32"
    load_in_4bit: bool
    optim: str
    padding_free: bool
    world_size: int
    local_rank: int
    notices: list[str] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        return int(os.environ.get("RANK", "0")) == 0


def make_plan(cfg: Config) -> Plan:
    import torch

    t = cfg.training
    cuda = torch.cuda.is_available()
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    notices = []
    backend = t.backend
    if backend == "auto":
        backend = "unsloth" if cuda and has_unsloth else "transformers"
    elif backend == "unsloth" and not has_unsloth:
        raise HiveError(
            "training.backend is unsloth, but Unsloth is not installed: pip install -r requirements-gpu.txt "
            "(CUDA machines), or set training.backend: transformers"
        )
    if backend == "unsloth" and not cuda:
        notices.append("Unsloth on CPU trains no faster than transformers (5.3 s/step both, identical losses)")
    load_in_4bit = cfg.model.load_in_4bit and cuda
    if cfg.model.load_in_4bit and not cuda:
        notices.append("no CUDA GPU: 4-bit loading (bitsandbytes) is off; the model trains in full precision (fp32)")
    if load_in_4bit and backend == "transformers" and not has_bnb:
        raise HiveError("model.load_in_4bit needs bitsandbytes: pip install bitsandbytes, or --set model.load_in_4bit=false")
    if cuda:
        precision = models.cuda_half_precision()
    else:
        precision = "fp32"
    optim = t.optim
    if optim == "auto":
        optim = "adamw_8bit" if cuda and has_bnb else "adamw_torch"
    return Plan(
        backend=backend,
        device="cuda" if cuda else "cpu",
        precision=precision,
        load_in_4bit=load_in_4bit,
        optim=optim,
        # Grouped batches leave few pads, and padded batches then beat padding-free rows: Unsloth compiles each decoder
        # layer for padded batches only (H100, 3B 4-bit, batch 16: 10,361 against 6,907 real tok/s), and on CPU a
        # padding-free row's attention spans the whole row (SmolLM2, batch 16: 82 against 42). Random batches stay
        # padding-free on a GPU: padded, 16 random chat samples hold 2.4x their real tokens (8,019 against 3,371), and
        # memory grows with those.
        padding_free=t.packing if isinstance(t.packing, bool) else cuda and not t.group_by_length,
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        notices=notices,
    )


# ---------------------------------------------------------------- data


def data_files(cfg: Config) -> tuple[Path, Path | None]:
    """The training file and its validation file (None when absent or empty)."""
    train = cfg.path("final")
    if not train.is_file():
        raise missing_input(train, "convert.py", "training data")
    val = train.with_name(train.name.removesuffix(".jsonl") + ".val.jsonl")
    return train, val if val.is_file() and val.stat().st_size > 0 else None


def read_samples(path: Path) -> list[list[dict]]:
    """The `messages` of every line; a malformed line stops with its line number."""
    samples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                messages = json.loads(line)["messages"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise HiveError(f"{where}: not a JSON object with a `messages` list; re-create the file with convert.py") from None
            if not isinstance(messages, list) or not messages:
                raise HiveError(f"{where}: `messages` must be a non-empty list; re-create the file with convert.py")
            for m in messages:
                if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                    raise HiveError(f"{where}: every message needs a role ({', '.join(sorted(ROLES))}) and a text `content`")
            if messages[-1]["role"] != "assistant":
                raise HiveError(f"{where}: the last message must be the assistant's (the reply to learn)")
            samples.append(messages)
    return samples


def encode(tokenizer, messages: list[dict], max_len: int, assistant_only: bool, eot: str) -> dict | None:
    """input_ids and labels of one sample; labels are -100 except the final reply and its end-of-turn marker
    (everything, when not `assistant_only`). The oldest context turns are dropped until the sample fits `max_len`;
    None when even the last user turn and the reply do not fit."""
    system = messages[:1] if messages[0]["role"] == "system" else []
    turns = messages[len(system):]
    while True:
        prompt, completion = templates.split(tokenizer, system + turns, eot)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if len(prompt_ids) + len(completion_ids) <= max_len:
            break
        # keep the conversation starting with a user turn: some templates insist on user/assistant alternation
        turns = turns[1:]
        while turns and turns[0]["role"] != "user":
            turns = turns[1:]
        if len(turns) < 2:
            return None
    prompt_labels = [-100] * len(prompt_ids) if assistant_only else prompt_ids
    return {"input_ids": prompt_ids + completion_ids, "labels": prompt_labels + completion_ids}


@dataclass
class EncodedData:
    dataset: object  # datasets.Dataset with input_ids, labels
    samples: int
    dropped: int  # too long for max_seq_length even without context
    tokens: int  # real tokens, without any bucket padding
    target_tokens: int
    median_tokens: float


def encode_file(tokenizer, path: Path, cfg: Config, limit: int | None = None, show: bool = True,
                bucket_pad: bool = False) -> EncodedData:
    """Every sample of `path` encoded; `bucket_pad` pads each one at its end to its length bucket (see batching)."""
    from datasets import Dataset
    from tqdm import tqdm

    samples = read_samples(path)[:limit] if limit else read_samples(path)
    if not samples:
        raise HiveError(f"{path} holds no samples; re-run convert.py (are your names in extract.me right?)")
    eot = templates.end_of_turn(tokenizer)
    rows = [
        encode(tokenizer, m, cfg.model.max_seq_length, cfg.training.assistant_only_loss, eot)
        for m in tqdm(samples, desc=f"tokenizing {path.name}", unit="sample", disable=not show, leave=False)
    ]
    kept = [r for r in rows if r is not None]
    if not kept:
        raise HiveError(f"no sample of {path} fits model.max_seq_length={cfg.model.max_seq_length}; raise it")
    lengths = [len(r["input_ids"]) for r in kept]
    if bucket_pad:
        kept = [dict(zip(("input_ids", "labels"), batching.pad_to_bucket(r["input_ids"], r["labels"], tokenizer.pad_token_id)))
                for r in kept]
    return EncodedData(
        dataset=Dataset.from_dict({"input_ids": [r["input_ids"] for r in kept], "labels": [r["labels"] for r in kept]}),
        samples=len(kept),
        dropped=len(rows) - len(kept),
        tokens=sum(lengths),
        target_tokens=sum(sum(1 for x in r["labels"] if x != -100) for r in kept),
        median_tokens=statistics.median(lengths),
    )


# ---------------------------------------------------------------- model


DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def load(cfg: Config, plan: Plan):
    """(model with a fresh LoRA adapter, tokenizer with the training chat template, template choice, location)."""
    if plan.backend == "unsloth":
        try:
            import unsloth  # noqa: F401  (must precede transformers/peft/trl to patch them)
        except Exception as e:  # Unsloth raises ImportError, RuntimeError or NotImplementedError on unusable setups
            raise HiveError(f"Unsloth could not start ({str(e).splitlines()[0]}); set training.backend: transformers") from None
    import torch
    from transformers import set_seed

    set_seed(cfg.training.seed)
    if plan.device == "cuda":
        # Loading happens before the Trainer selects this process's GPU: whatever a library allocates on "the current
        # device" meanwhile (a CUDA context, kernel buffers) must go to this rank's GPU, not to GPU 0 for every rank.
        torch.cuda.set_device(plan.local_rank)
    source = models.resolve_source(cfg.model.base_model)
    location = models.hf_location(cfg.model.base_model)
    dtype = getattr(torch, DTYPE_NAMES[plan.precision])
    lora = cfg.lora
    gc = cfg.training.gradient_checkpointing
    if plan.backend == "unsloth":
        from unsloth import FastLanguageModel

        kwargs = {"device_map": {"": plan.local_rank}} if plan.device == "cuda" else {}
        try:
            model, tokenizer = FastLanguageModel.from_pretrained(
                model_name=location, max_seq_length=cfg.model.max_seq_length, dtype=dtype,
                load_in_4bit=plan.load_in_4bit, load_in_16bit=not plan.load_in_4bit and plan.device == "cuda",
                random_state=cfg.training.seed, **kwargs,
            )
        except (OSError, RuntimeError, ValueError) as e:
            if source.kind != "hub":
                raise
            raise models.hub_error(cfg.model.base_model, e) from None
        model = FastLanguageModel.get_peft_model(
            model, r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
            target_modules=lora.target_modules, bias=lora.bias, random_state=cfg.training.seed,
            use_gradient_checkpointing="unsloth" if gc else False,
        )
    else:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        kwargs = {"dtype": dtype}
        if plan.device == "cuda":
            kwargs["device_map"] = {"": plan.local_rank}
        if plan.load_in_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
            )
        tokenizer = models.load_tokenizer(cfg.model.base_model)
        model = models.load_model(cfg.model.base_model, **kwargs)
        if plan.load_in_4bit:
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=gc, gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        model = get_peft_model(model, LoraConfig(
            r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
            target_modules=lora.target_modules, bias=lora.bias, task_type="CAUSAL_LM",
        ))
    # A KV cache would make transformers ignore the per-sample boundaries of padding-free rows.
    model.config.use_cache = False
    choice = templates.apply(tokenizer, cfg.model.chat_template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, choice, location


# ---------------------------------------------------------------- run folder, resume, Ctrl-C


def checkpoints(run_dir: Path) -> list[Path]:
    found = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def run_folder(cfg: Config, run: str | None, resume: str | None, world_size: int) -> tuple[Path, Path | None]:
    """(outputs/<run>, checkpoint to resume from). `resume` is None, "latest" or a checkpoint folder."""
    outputs = cfg.path("outputs")
    if resume and resume != "latest":
        ckpt = paths.resolve(resume)
        if not (ckpt / "trainer_state.json").is_file():
            raise HiveError(f"{ckpt} is not a training checkpoint (no trainer_state.json); pass an outputs/<run>/checkpoint-N folder")
        return ckpt.parent, ckpt
    name = run or cfg.training.run_name
    if resume:
        if name is None:
            runs = [d for d in outputs.glob("*") if d.is_dir() and checkpoints(d)] if outputs.is_dir() else []
            if not runs:
                raise HiveError(f"no run with a checkpoint in {outputs} to resume; start one without --resume")
            run_dir = max(runs, key=lambda d: d.stat().st_mtime)
        else:
            run_dir = outputs / name
        found = checkpoints(run_dir)
        if not found:
            raise HiveError(f"no checkpoint in {run_dir} to resume from; start the run without --resume")
        return run_dir, found[-1]
    if name is None:
        if world_size > 1:
            raise HiveError("name the run when training on several GPUs (--run NAME), so every process writes to one folder")
        name = time.strftime("%Y%m%d-%H%M%S")
    run_dir = outputs / name
    if checkpoints(run_dir) or (run_dir / "final_model").exists():
        raise HiveError(f"{run_dir} already holds a run; continue it with --resume, or pick another --run NAME")
    return run_dir, None


def stop_callback():
    """A TrainerCallback that turns the first Ctrl-C into "save a checkpoint after this step, then stop"; a second
    Ctrl-C quits at once. `request_stop()` does the same without a signal."""
    from transformers import TrainerCallback

    class StopOnInterrupt(TrainerCallback):
        def __init__(self):
            self.requested = False
            self._previous = None

        def request_stop(self, *_):
            if not self.requested:
                print("\nCtrl-C: saving a checkpoint after this step (press again to quit without saving)", flush=True)
            self.requested = True
            self._restore()

        def _restore(self):
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)
                self._previous = None

        def on_train_begin(self, args, state, control, **kwargs):
            if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
                self._previous = signal.signal(signal.SIGINT, self.request_stop)

        def on_step_end(self, args, state, control, **kwargs):
            if self.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            self._restore()

    return StopOnInterrupt()


# ---------------------------------------------------------------- outputs


def sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def plot_losses(log_history: list[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # in requirements.txt, but a bare GPU image may lack it; the losses are in run.json too
        print(f"notice: matplotlib is not installed, so {path.name} is not drawn (pip install matplotlib)")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    fig, ax = plt.subplots(figsize=(7, 4))
    for points, label, style in ((train, "train", "-"), (evals, "validation", "o-")):
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (my replies)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with fileio.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def write_outputs(run_dir: Path, cfg: Config, info: dict, log_history: list[dict]) -> None:
    import yaml

    with fileio.atomic_write(run_dir / "config.yaml") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False, allow_unicode=True)
    fileio.write_jsonl(run_dir / "trainer_log.jsonl", log_history)
    with fileio.atomic_write(run_dir / "run.json") as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
    plot_losses(log_history, run_dir / "loss.png")


# ---------------------------------------------------------------- training


def trainer_args(cfg: Config, plan: Plan, run_dir: Path, has_eval: bool, **extra):
    from trl import SFTConfig

    t = cfg.training
    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing (the old name warns); 5.17 has only the old
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in {f.name for f in dataclasses.fields(SFTConfig)} \
        else "gradient_checkpointing"
    return SFTConfig(
        output_dir=str(run_dir),
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=plan.optim,
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        use_cpu=plan.device == "cpu",
        # Unsloth checkpoints through get_peft_model ("unsloth" offloading); the Trainer's own would replace it.
        **{checkpointing: t.gradient_checkpointing and plan.backend == "transformers",
           f"{checkpointing}_kwargs": {"use_reentrant": False}},
        logging_steps=t.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        report_to=[] if t.report_to == "none" else [t.report_to],
        seed=t.seed,
        # Samples are tokenized and fitted to max_seq_length by encode(); TRL must not truncate or pack them again.
        max_length=None,
        packing=False,
        padding_free=plan.padding_free,
        ddp_find_unused_parameters=False if plan.world_size > 1 else None,
        **extra,
    )


def trainer_class(group_by_length: bool, max_tokens_per_pass: int):
    """TRL's SFTTrainer (as Unsloth patched it, when it did), drawing batches grouped by length within
    `max_tokens_per_pass` if asked, and running any padded batch over that limit as several forward/backward passes
    (0: no limit)."""
    from trl import SFTTrainer

    class HiveTrainer(SFTTrainer):
        def get_train_dataloader(self):
            if not group_by_length:
                return super().get_train_dataloader()
            from torch.utils.data import DataLoader

            lengths = [len(ids) for ids in self.train_dataset["input_ids"]]
            sampler = batching.GroupedSampler(lengths, self._train_batch_size, max_tokens_per_pass, self.args.seed)
            return self.accelerator.prepare(DataLoader(
                self.train_dataset, batch_sampler=batching.GroupedBatchSampler(sampler), collate_fn=self.data_collator,
                num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory))

        def training_step(self, model, inputs, num_items_in_batch=None):
            passes = batching.split_passes(inputs, max_tokens_per_pass)
            if len(passes) == 1:
                return super().training_step(model, inputs, num_items_in_batch)
            # Each pass's loss is a sum over its reply tokens divided by the whole batch's count, so the passes' gradients
            # add up to the batch's; without that count each pass would be averaged on its own.
            assert num_items_in_batch is not None, "split passes need the Trainer's num_items_in_batch"
            loss = 0.0
            for i, part in enumerate(passes):
                last = i == len(passes) - 1
                with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                    loss = loss + super().training_step(model, part, num_items_in_batch)
            return loss

    return HiveTrainer


def train(cfg: Config, run: str | None = None, resume: str | None = None, callbacks=(), args_extra=None) -> dict:
    """Fine-tune cfg.model.base_model on the dataset; returns the figures of the summary.

    `resume`: None, "latest" (the run's newest checkpoint) or a checkpoint folder. `callbacks` are extra
    TrainerCallbacks and `args_extra` extra SFTConfig fields (the benchmark uses both)."""
    started = time.time()
    train_file, val_file = data_files(cfg)
    plan = make_plan(cfg)
    run_dir, checkpoint = run_folder(cfg, run, resume, plan.world_size)
    say = print if plan.is_main else (lambda *a, **k: None)
    t = cfg.training
    effective = t.per_device_train_batch_size * t.gradient_accumulation_steps * plan.world_size
    say(f"train: backend {plan.backend} on {plan.device}"
        f"{f' x {plan.world_size} processes' if plan.world_size > 1 else ''}, {plan.precision}"
        f"{', 4-bit' if plan.load_in_4bit else ''}, optimizer {plan.optim}, "
        f"{'padding-free' if plan.padding_free else 'padded'} batches{', grouped by length' if t.group_by_length else ''}")
    limit = f", at most {t.max_tokens_per_pass:,} tokens per pass" if t.max_tokens_per_pass > 0 else ""
    say(f"train: effective batch {'up to ' if limit and t.group_by_length else ''}{effective} samples per optimizer step "
        f"({t.per_device_train_batch_size} x {t.gradient_accumulation_steps} accumulation x {plan.world_size} GPU(s){limit})")
    for notice in plan.notices:
        say(f"notice: {notice}")
    say(f"train: {'resuming ' + str(checkpoint) if checkpoint else 'writing ' + str(run_dir)}", flush=True)

    model, tokenizer, template, location = load(cfg, plan)
    train_data = encode_file(tokenizer, train_file, cfg, t.max_samples, plan.is_main,
                             bucket_pad=t.group_by_length and plan.padding_free)
    val_data = encode_file(tokenizer, val_file, cfg, None, plan.is_main) if val_file else None
    say(f"train: {train_data.samples:,} training samples ({train_data.tokens:,} tokens, median "
        f"{train_data.median_tokens:g}, {train_data.target_tokens:,} learned)"
        + (f", {train_data.dropped:,} longer than max_seq_length skipped" if train_data.dropped else "")
        + (f"; {val_data.samples:,} validation samples" if val_data else "; no validation file, no evaluation"),
        flush=True)

    stopper = stop_callback()
    trainer = trainer_class(t.group_by_length, t.max_tokens_per_pass)(
        model=model,
        args=trainer_args(cfg, plan, run_dir, val_data is not None, **(args_extra or {})),
        train_dataset=train_data.dataset,
        eval_dataset=val_data.dataset if val_data else None,
        processing_class=tokenizer,
        callbacks=[stopper, *callbacks],
    )
    start_epoch = json.loads((checkpoint / "trainer_state.json").read_text())["epoch"] if checkpoint else 0.0
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    interrupted = stopper.requested
    state = trainer.state
    # Real (non-pad) tokens trained on in this session: the dataset holds no padding, and the epochs run say how much
    # of it was seen. (The Trainer's own counter includes the pad tail that Unsloth adds to padding-free rows.)
    tokens = round((state.epoch - start_epoch) * train_data.tokens)
    eval_loss = None
    if val_data and not interrupted:
        evals = [e for e in state.log_history if "eval_loss" in e]
        # the final validation loss; evaluated again only when the last step was not an evaluation step
        done = evals and evals[-1]["step"] == state.global_step
        eval_loss = evals[-1]["eval_loss"] if done else trainer.evaluate()["eval_loss"]
    final_dir = run_dir / "final_model"
    if not interrupted:
        trainer.save_model(str(final_dir))
    train_seconds = result.metrics.get("train_runtime", 0.0)
    losses = [e["loss"] for e in state.log_history if "loss" in e]
    info = {
        "base_model": cfg.model.base_model,
        "model_location": location,
        "backend": plan.backend,
        "device": plan.device,
        "precision": plan.precision,
        "load_in_4bit": plan.load_in_4bit,
        "padding_free": plan.padding_free,
        "chat_template": template,
        "end_of_turn": templates.end_of_turn(tokenizer),
        "system_prompt": next((m[0]["content"] for m in read_samples(train_file)[:1] if m[0]["role"] == "system"), None),
        "data": {
            "train": {"path": str(train_file), "sha256": sha256(train_file), "samples": train_data.samples,
                      "skipped_too_long": train_data.dropped, "tokens": train_data.tokens},
            "validation": {"path": str(val_file), "sha256": sha256(val_file), "samples": val_data.samples,
                           "tokens": val_data.tokens} if val_data else None,
        },
        "versions": versions(),
        "world_size": plan.world_size,
        "effective_batch": effective,
        "steps": state.global_step,
        "epochs": state.epoch,
        "train_seconds": train_seconds,
        "tokens_seen": tokens,
        "tokens_per_second": tokens / train_seconds if train_seconds else None,
        "train_loss": losses[-1] if losses else None,
        "eval_loss": eval_loss,
        "losses": [[e["step"], e["loss"]] for e in state.log_history if "loss" in e],
        "eval_losses": [[e["step"], e["eval_loss"]] for e in state.log_history if "eval_loss" in e],
        "resumed_from": str(checkpoint) if checkpoint else None,
        "interrupted": interrupted,
        "final_model": str(final_dir) if not interrupted else None,
    }
    if trainer.is_world_process_zero():
        if not interrupted:
            tokenizer.save_pretrained(str(final_dir))
        write_outputs(run_dir, cfg, info, state.log_history)
    latest = checkpoints(run_dir)
    return {**info, "run_dir": str(run_dir), "checkpoint": str(latest[-1]) if latest else None,
            "is_main": plan.is_main, "seconds": time.time() - started}
