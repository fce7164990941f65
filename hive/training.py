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

train() runs in steps a reader can follow: start (plan, data files, run folder), load (model + fresh adapter),
encode_file (samples -> token ids and labels), make_trainer, fit (the Trainer's loop, Ctrl-C, a failing backend),
finish (final model, run.json, logs, loss curve). The Trainer and its callbacks are in hive/trainer.py.

Nothing here imports transformers, peft or trl at module level: Unsloth must be imported first when it is used.
"""

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from hive import batching, conversations, fileio, models, paths, runs, templates
from hive.config import Config
from hive.errors import HiveError, missing_input

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


def _unsloth_starts(notices: list[str]) -> bool:
    """Whether Unsloth imports here: it can be installed and still fail against the torch or CUDA build at hand. An
    import that works is the one training uses (nothing has imported transformers yet)."""
    try:
        import unsloth  # noqa: F401
    except Exception as e:  # Unsloth raises ImportError, RuntimeError or NotImplementedError on unusable setups
        notices.append(f"Unsloth is installed but does not start here ({str(e).strip().splitlines()[0][:200]}); "
                       f"training with transformers")
        return False
    return True


def make_plan(cfg: Config) -> Plan:
    import torch

    t = cfg.training
    cuda = torch.cuda.is_available()
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    notices = []
    backend = t.backend
    if backend == "auto":
        backend = "unsloth" if cuda and has_unsloth and _unsloth_starts(notices) else "transformers"
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
        load_in_4bit = False
        notices.append("bitsandbytes is not installed, so the model loads in 16-bit instead of 4-bit (about 3x the GPU "
                       "memory): pip install bitsandbytes")
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
    val = paths.validation_file(train)
    return train, val if val.is_file() and val.stat().st_size > 0 else None


def encode(tokenizer, messages: list[dict], max_len: int, assistant_only: bool, eot: str) -> dict | None:
    """input_ids and labels of one sample; labels are -100 except the final reply and its end-of-turn marker
    (everything, when not `assistant_only`). The oldest context turns are dropped until the sample fits `max_len`
    (conversations.fit); None when even the last user turn and the reply do not fit."""
    measured: dict[int, tuple[list[int], list[int]]] = {}

    def length(conversation: list[dict]) -> int:
        prompt, completion = templates.split(tokenizer, conversation, eot)
        ids = (tokenizer(prompt, add_special_tokens=False)["input_ids"],
               tokenizer(completion, add_special_tokens=False)["input_ids"])
        measured[id(conversation)] = ids
        return len(ids[0]) + len(ids[1])

    fitted = conversations.fit(messages, length, max_len, keep=2)
    if fitted is None:
        return None
    prompt_ids, completion_ids = measured[id(fitted)]  # fit() measured the conversation it returns last
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

    samples = conversations.read(path, limit)
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
        kept = [dict(zip(("input_ids", "labels"),
                         batching.pad_to_bucket(r["input_ids"], r["labels"], tokenizer.pad_token_id)))
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
        import unsloth  # noqa: F401  (must precede transformers/peft/trl to patch them; a failure here is BackendFailed)
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
            kwargs["quantization_config"] = models.quantization_config(dtype)
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


# ---------------------------------------------------------------- run folder and resume


def run_folder(cfg: Config, resume: str | None, world_size: int) -> tuple[Path, Path | None]:
    """(outputs/<run>, checkpoint to resume from). `resume` is None, "latest" (the run's newest complete checkpoint;
    without a run name, the newest run that has one) or a checkpoint folder. Half-written checkpoints that an older
    version or a copy left are removed, and never resumed from."""
    outputs = cfg.path("outputs")
    if resume and resume != "latest":
        ckpt = paths.resolve(resume)
        if not runs.is_complete(ckpt):
            raise HiveError(f"{ckpt} is not a complete training checkpoint (no trainer_state.json or weights); pass "
                            f"an outputs/<run>/checkpoint-N folder, or --resume alone for the newest complete one")
        return ckpt.parent, ckpt
    name = cfg.training.run_name
    if resume:
        if name is None:
            found = [d for d in outputs.glob("*") if d.is_dir() and runs.checkpoints(d)] if outputs.is_dir() else []
            if not found:
                raise HiveError(f"no run with a complete checkpoint in {outputs} to resume; start one without --resume")
            run_dir = max(found, key=lambda d: runs.checkpoints(d)[-1].stat().st_mtime)
        else:
            run_dir = runs.run_dir(name, outputs)
        found = runs.checkpoints(run_dir)
        if not found:
            raise HiveError(f"no complete checkpoint in {run_dir} to resume from; start the run again without --resume "
                            f"(use another --run NAME, or delete the folder)")
        return run_dir, found[-1]
    if name is None:
        if world_size > 1:
            raise HiveError("name the run when training on several GPUs (--run NAME), so every process writes to one "
                            "folder")
        name = time.strftime("%Y%m%d-%H%M%S")
    run_dir = runs.run_dir(name, outputs)
    if runs.checkpoints(run_dir) or (run_dir / runs.ADAPTER).exists():
        raise HiveError(f"{run_dir} already holds a run; continue it with --resume, or pick another --run NAME")
    return run_dir, None


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


def write_outputs(run_dir: Path, cfg: Config, record: runs.RunRecord, log_history: list[dict]) -> None:
    import yaml

    with fileio.atomic_write(run_dir / runs.CONFIG_FILE) as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False, allow_unicode=True)
    fileio.write_jsonl(run_dir / "trainer_log.jsonl", log_history)
    record.save(run_dir)
    plot_losses(log_history, run_dir / "loss.png")


# ---------------------------------------------------------------- training


class BackendFailed(HiveError):
    """Unsloth failed while loading or training (not a user error, not out of memory): the run can go on with the
    transformers backend from its last checkpoint (see fallback_argv)."""

    def __init__(self, reason: str, run_dir: Path):
        super().__init__(f"Unsloth failed ({reason}); continue with the transformers backend from the last "
                         f"checkpoint: python train.py --run {run_dir} --resume --set training.backend=transformers")
        self.reason, self.run_dir = reason, run_dir


def fallback_argv(argv: list[str], error: BackendFailed) -> list[str]:
    """The command line that continues a run whose Unsloth backend failed: same arguments, the transformers
    backend, the same run folder, and --resume when a complete checkpoint exists."""
    extra = ["--set", "training.backend=transformers", "--run", str(error.run_dir)]
    if runs.checkpoints(error.run_dir) and "--resume" not in argv:
        extra.append("--resume")
    return [*argv, *extra]


def trainer_args(cfg: Config, plan: Plan, run_dir: Path, has_eval: bool, **extra):
    from trl import SFTConfig

    t = cfg.training
    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing (the old name warns); 5.17 has only
    # the old one
    fields = {f.name for f in dataclasses.fields(SFTConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
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
        # A rank that hangs (or died) stops the others within minutes instead of the default half hour.
        ddp_timeout=round(t.ddp_timeout_minutes * 60),
        **extra,
    )


@dataclass
class Session:
    """What start() decided: the plan, the files, the run folder and where to resume from."""

    plan: Plan
    train_file: Path
    val_file: Path | None
    run_dir: Path
    checkpoint: Path | None
    created: bool  # this session made the run folder (so an interrupted start leaves none behind)

    @property
    def say(self):
        return print if self.plan.is_main else (lambda *a, **k: None)


def start(cfg: Config, resume: str | None) -> Session:
    """Decide everything cheap before anything heavy is loaded, and say it."""
    train_file, val_file = data_files(cfg)
    plan = make_plan(cfg)
    run_dir, checkpoint = run_folder(cfg, resume, plan.world_size)
    created = not run_dir.exists()
    session = Session(plan, train_file, val_file, run_dir, checkpoint, created)
    say, t = session.say, cfg.training
    if plan.is_main and run_dir.exists():
        gone = runs.remove_incomplete(run_dir) + [p.name for p in fileio.remove_stale_temps(run_dir)]
        if gone:
            say(f"notice: removed what an interrupted save left behind: {', '.join(gone)}")
    effective = t.per_device_train_batch_size * t.gradient_accumulation_steps * plan.world_size
    say(f"train: backend {plan.backend} on {plan.device}"
        f"{f' x {plan.world_size} processes' if plan.world_size > 1 else ''}, {plan.precision}"
        f"{', 4-bit' if plan.load_in_4bit else ''}, optimizer {plan.optim}, "
        f"{'padding-free' if plan.padding_free else 'padded'} batches"
        f"{', grouped by length' if t.group_by_length else ''}")
    limit = f", at most {t.max_tokens_per_pass:,} tokens per pass" if t.max_tokens_per_pass > 0 else ""
    say(f"train: effective batch {'up to ' if limit and t.group_by_length else ''}{effective} "
        f"samples per optimizer step ({t.per_device_train_batch_size} x {t.gradient_accumulation_steps} accumulation "
        f"x {plan.world_size} GPU(s){limit})")
    for notice in plan.notices:
        say(f"notice: {notice}")
    say(f"train: {'resuming ' + str(checkpoint) if checkpoint else 'writing ' + str(run_dir)}", flush=True)
    return session


def make_trainer(cfg: Config, session: Session, model, tokenizer, train_data, val_data, callbacks=(),
                 args_extra=None):
    from hive.trainer import HiveTrainer, SaveEveryMinutes, StopOnInterrupt

    t = cfg.training
    return HiveTrainer(
        model=model,
        args=trainer_args(cfg, session.plan, session.run_dir, val_data is not None, **(args_extra or {})),
        train_dataset=train_data.dataset,
        eval_dataset=val_data.dataset if val_data else None,
        processing_class=tokenizer,
        callbacks=[StopOnInterrupt(), SaveEveryMinutes(t.save_minutes), *callbacks],
        group_by_length=t.group_by_length,
        max_tokens_per_pass=t.max_tokens_per_pass,
    )


def _unsloth_failure(plan: Plan, error: BaseException) -> bool:
    """Whether `error` is Unsloth failing, which the transformers backend may not: not Ctrl-C, not the user's own
    mistake (HiveError), not running out of memory (which transformers would too)."""
    if plan.backend != "unsloth" or isinstance(error, (KeyboardInterrupt, HiveError, MemoryError)):
        return False
    return "out of memory" not in str(error).lower()


def _collective_failure(error: BaseException) -> bool:
    """A collective operation between the processes of a data-parallel run failed or timed out."""
    text = f"{type(error).__name__}: {error}"
    return any(word in text for word in ("DistBackendError", "DistNetworkError", "Timed out", "timed out",
                                         "Connection closed by peer", "Connection reset by peer"))


def fit(trainer, session: Session):
    """Run the Trainer's loop; returns (TrainOutput, interrupted). A second Ctrl-C before any checkpoint removes the
    run folder this session made; an Unsloth failure becomes BackendFailed."""
    from hive.trainer import StopOnInterrupt

    stopper = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, StopOnInterrupt))
    checkpoint = session.checkpoint
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except BaseException as e:
        if session.created and session.plan.is_main and not runs.checkpoints(session.run_dir):
            shutil.rmtree(session.run_dir, ignore_errors=True)
        if _unsloth_failure(session.plan, e):
            raise BackendFailed(f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}",
                                session.run_dir) from e
        if session.plan.world_size > 1 and _collective_failure(e):
            minutes = trainer.args.ddp_timeout / 60
            raise HiveError(f"another training process stopped answering for {minutes:g} minutes (it hung or "
                            f"crashed; its own error is above); the last complete checkpoint is kept: run the same "
                            f"command with --resume") from e
        raise
    return result, stopper.requested


def _peak_gpu_gib(plan: Plan) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(plan.local_rank) / 2**30 if plan.device == "cuda" else None


@dataclass
class TrainResult:
    run_dir: Path
    record: runs.RunRecord
    checkpoint: Path | None  # the newest complete checkpoint
    is_main: bool
    seconds: float


def finish(cfg: Config, session: Session, trainer, tokenizer, template: str, location: str, train_data, val_data,
           result, interrupted: bool) -> runs.RunRecord:
    """Save the final model (unless interrupted) and write run.json, config.yaml, the log and loss.png."""
    state, plan, t = trainer.state, session.plan, cfg.training
    start_epoch = json.loads((session.checkpoint / "trainer_state.json").read_text())["epoch"] \
        if session.checkpoint else 0.0
    eval_loss = None
    if val_data and not interrupted:
        evals = [e for e in state.log_history if "eval_loss" in e]
        # the final validation loss; evaluated again only when the last step was not an evaluation step
        done = evals and evals[-1]["step"] == state.global_step
        eval_loss = evals[-1]["eval_loss"] if done else trainer.evaluate()["eval_loss"]
    final_dir = session.run_dir / runs.ADAPTER
    if not interrupted:
        trainer.save_final_model(final_dir)
    train_seconds = result.metrics.get("train_runtime", 0.0)
    # Real (non-pad) tokens trained on in this session: the dataset holds no padding, and the epochs run say how much
    # of it was seen. (The Trainer's own counter includes the pad tail that Unsloth adds to padding-free rows.)
    tokens = round((state.epoch - start_epoch) * train_data.tokens)
    first = conversations.read(session.train_file, 1)[0]
    record = runs.RunRecord(
        base_model=cfg.model.base_model, max_seq_length=cfg.model.max_seq_length, load_in_4bit=plan.load_in_4bit,
        system_prompt=first[0]["content"] if first[0]["role"] == "system" else None,
        model_location=location, backend=plan.backend, device=plan.device, precision=plan.precision,
        padding_free=plan.padding_free, chat_template=template, end_of_turn=templates.end_of_turn(tokenizer),
        train=runs.DataFile(str(session.train_file), sha256(session.train_file), train_data.samples, train_data.tokens,
                            train_data.dropped),
        validation=runs.DataFile(str(session.val_file), sha256(session.val_file), val_data.samples, val_data.tokens)
        if val_data else None,
        versions=versions(), world_size=plan.world_size,
        effective_batch=t.per_device_train_batch_size * t.gradient_accumulation_steps * plan.world_size,
        steps=state.global_step, epochs=state.epoch, train_seconds=train_seconds, tokens_seen=tokens,
        tokens_per_second=tokens / train_seconds if train_seconds else None,
        peak_gpu_gib=_peak_gpu_gib(plan),
        train_loss=next((e["loss"] for e in reversed(state.log_history) if "loss" in e), None), eval_loss=eval_loss,
        losses=[[e["step"], e["loss"]] for e in state.log_history if "loss" in e],
        eval_losses=[[e["step"], e["eval_loss"]] for e in state.log_history if "eval_loss" in e],
        resumed_from=str(session.checkpoint) if session.checkpoint else None, interrupted=interrupted,
        final_model=None if interrupted else str(final_dir),
    )
    if trainer.is_world_process_zero():
        write_outputs(session.run_dir, cfg, record, state.log_history)
    return record


def train(cfg: Config, resume: str | None = None, callbacks=(), args_extra=None) -> TrainResult:
    """Fine-tune cfg.model.base_model on the dataset (the steps are in the module docstring).

    `resume`: None, "latest" (the run's newest complete checkpoint) or a checkpoint folder. `callbacks` are extra
    TrainerCallbacks and `args_extra` extra SFTConfig fields (the benchmark uses both)."""
    started = time.time()
    session = start(cfg, resume)
    plan, t = session.plan, cfg.training
    try:
        model, tokenizer, template, location = load(cfg, plan)
    except Exception as e:
        if _unsloth_failure(plan, e):
            raise BackendFailed(f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}", session.run_dir) from e
        raise
    train_data = encode_file(tokenizer, session.train_file, cfg, t.max_samples, plan.is_main,
                             bucket_pad=t.group_by_length and plan.padding_free)
    val_data = encode_file(tokenizer, session.val_file, cfg, None, plan.is_main) if session.val_file else None
    session.say(f"train: {train_data.samples:,} training samples ({train_data.tokens:,} tokens, median "
                f"{train_data.median_tokens:g}, {train_data.target_tokens:,} learned)"
                + (f", {train_data.dropped:,} longer than max_seq_length skipped" if train_data.dropped else "")
                + (f"; {val_data.samples:,} validation samples" if val_data else "; no validation file, no evaluation"),
                flush=True)
    trainer = make_trainer(cfg, session, model, tokenizer, train_data, val_data, callbacks, args_extra)
    result, interrupted = fit(trainer, session)
    record = finish(cfg, session, trainer, tokenizer, template, location, train_data, val_data, result, interrupted)
    latest = runs.checkpoints(session.run_dir)
    return TrainResult(session.run_dir, record, latest[-1] if latest else None, plan.is_main, time.time() - started)
