"""What lives in outputs/<run>/ and exports/<name>/, and the one way to find, read and write it.

    outputs/<run>/                      train.py
        final_model/                    PEFT adapter + tokenizer with the chat template it was trained with
        checkpoint-N/                   complete or absent: written in .saving/ and renamed into place
        run.json                        RunRecord
        config.yaml                     the resolved config of the run
        eval.json, eval_report.md       evaluate.py (EvalRecord)
    exports/<name>/                     export_model.py
        export.json                     ExportRecord

Every reader goes through the records below, so a key that is renamed or missing fails loudly, naming the stage
that writes the file. A setting that both the run and the config know is resolved once, here: a run is evaluated,
exported and chatted with at the max_seq_length it was trained with, unless the command line sets
model.max_seq_length (training_config.yaml's value is for new training runs).
"""

import dataclasses
import json
import re
import shutil
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

from hive import fileio, paths
from hive.errors import HiveError, missing_input

RUN_FILE, EVAL_FILE, EXPORT_FILE, CONFIG_FILE = "run.json", "eval.json", "export.json", "config.yaml"
ADAPTER = "final_model"
SAVING = ".saving"  # a checkpoint or the final model being written; renamed into place when complete
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


# ---------------------------------------------------------------- records


def _from_dict(cls, data: Any, where: str):
    """An instance of dataclass `cls` from parsed JSON; missing required keys and wrong shapes raise KeyError or
    TypeError naming the key (unknown keys are ignored: a newer Hive may add some)."""
    if not isinstance(data, dict):
        raise TypeError(f"{where}: expected an object")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _value(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise KeyError(f"{where}.{f.name}")
    return cls(**values)


def _value(tp, value, where: str):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _value(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    if origin is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return [_from_dict(typing.get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _load(cls, path: Path, stage: str):
    if not path.is_file():
        raise missing_input(path, stage, path.name)
    try:
        return _from_dict(cls, json.loads(path.read_text(encoding="utf-8")), path.name)
    except json.JSONDecodeError as e:
        raise HiveError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}); run {stage} again") from None
    except (KeyError, TypeError) as e:
        raise HiveError(f"{path} is incomplete or from an older Hive ({e.args[0]} is missing or malformed); "
                        f"run {stage} again") from None


def _save(record, path: Path) -> None:
    with fileio.atomic_write(path) as f:
        json.dump(dataclasses.asdict(record), f, indent=2, ensure_ascii=False)
        f.write("\n")


class _Record:
    """A record that lives in a file of a run or export folder, written by one stage."""

    FILE: ClassVar[str]
    STAGE: ClassVar[str]

    def save(self, folder: Path) -> None:
        _save(self, folder / self.FILE)

    @classmethod
    def load(cls, folder: Path):
        return _load(cls, folder / cls.FILE, cls.STAGE)


@dataclass
class DataFile:
    """A training or validation file as a run saw it."""

    path: str
    sha256: Optional[str]
    samples: int
    tokens: int
    skipped_too_long: int = 0


@dataclass
class RunRecord(_Record):
    """run.json: what train.py trained, on what, how, and how it went."""

    FILE: ClassVar[str] = RUN_FILE
    STAGE: ClassVar[str] = "train.py"

    base_model: str  # as configured: hub id, folder, .gguf or a bundled name
    max_seq_length: int
    load_in_4bit: bool
    system_prompt: Optional[str] = None
    model_location: str = ""
    backend: str = ""
    device: str = ""
    precision: str = ""
    padding_free: bool = False
    chat_template: str = ""
    end_of_turn: str = ""
    train: Optional[DataFile] = None
    validation: Optional[DataFile] = None
    versions: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    effective_batch: int = 0
    steps: int = 0
    epochs: float = 0.0
    train_seconds: float = 0.0
    tokens_seen: int = 0
    tokens_per_second: Optional[float] = None
    peak_gpu_gib: Optional[float] = None  # most GPU memory allocated at once (the first process's GPU)
    train_loss: Optional[float] = None
    eval_loss: Optional[float] = None
    losses: list[list[float]] = field(default_factory=list)  # [step, loss]
    eval_losses: list[list[float]] = field(default_factory=list)
    resumed_from: Optional[str] = None
    interrupted: bool = False
    final_model: Optional[str] = None


@dataclass
class Example:
    context: list[dict]
    real: str
    base: str
    tuned: str


@dataclass
class EvalRecord(_Record):
    """eval.json: evaluate.py's comparison of the fine-tune with its base model (export_model.py reads `improved`)."""

    FILE: ClassVar[str] = EVAL_FILE
    STAGE: ClassVar[str] = "evaluate.py"

    run: str
    data: str
    base_model: str
    samples: int
    reply_tokens: int
    base_nll: float
    tuned_nll: float
    improved: bool
    base_perplexity: float = 0.0
    tuned_perplexity: float = 0.0
    nll_reduction: float = 0.0
    win_rate: float = 0.0
    style_samples: int = 0
    style: dict[str, dict[str, float]] = field(default_factory=dict)  # "real" | "base" | "tuned" -> metrics
    style_closer_to_real: int = 0
    examples: list[Example] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    stop_rate: dict[str, float] = field(default_factory=dict)  # "base" | "tuned" -> share of replies that ended
    auc: dict[str, Optional[float]] = field(default_factory=dict)  # "base" | "tuned" -> hive.style.indistinguishability
    ended: dict[str, list[bool]] = field(default_factory=dict)  # "base" | "tuned" -> per reply, in context order


@dataclass
class Artifact:
    format: str  # e.g. "gguf q4_k_m"
    file: str
    bytes: int
    seconds: float
    check: str


@dataclass
class ExportRecord(_Record):
    """export.json: what export_model.py built from which run, and how a client must run it."""

    FILE: ClassVar[str] = EXPORT_FILE
    STAGE: ClassVar[str] = "export_model.py"

    name: str
    run: str
    base_model: str
    max_seq_length: int  # the Modelfile's num_ctx
    system_prompt: Optional[str] = None
    stops: Optional[list[str]] = None
    gguf: Optional[str] = None  # the Modelfile's GGUF (chat.py's pick)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)


# ---------------------------------------------------------------- runs


@dataclass
class Run:
    """A finished train.py run: its folder and its record."""

    folder: Path
    record: RunRecord

    @property
    def adapter(self) -> Path:
        return self.folder / ADAPTER

    @property
    def base_model(self) -> str:
        return self.record.base_model

    @property
    def system_prompt(self) -> Optional[str]:
        return self.record.system_prompt

    def evaluation(self) -> Optional[EvalRecord]:
        """evaluate.py's verdict on this run, or None when it has not been evaluated."""
        return EvalRecord.load(self.folder) if (self.folder / EVAL_FILE).exists() else None


def run_dir(spec: str | Path, outputs: Path) -> Path:
    """The folder a run name or path means: a bare name is a run under paths.outputs; anything with a slash (or an
    absolute path) is a folder relative to the project root. train.py, evaluate.py, export_model.py and chat.py all
    resolve --run / --input / SOURCE this way."""
    text = str(spec)
    return paths.resolve(text) if "/" in text or "\\" in text or Path(text).is_absolute() else outputs / text


def spelling(folder: Path, outputs: Path) -> str:
    """How the next-command hints name a run: its name when it lies in paths.outputs, else its path."""
    folder = Path(folder)
    return folder.name if folder.parent.resolve() == Path(outputs).resolve() else paths.display(folder)


def newest_run(outputs: Path) -> Path:
    """The run folder under `outputs` whose run.json was written last."""
    found = [p.parent for p in outputs.glob(f"*/{RUN_FILE}")] if outputs.is_dir() else []
    if not found:
        raise missing_input(f"{outputs}/<run>/{RUN_FILE}", "train.py", "trained run")
    return max(found, key=lambda p: (p / RUN_FILE).stat().st_mtime)


def load_run(spec: str | Path | None, outputs: Path) -> Run:
    """The run `spec` names (a run name, its folder or its final_model/), or the newest one under `outputs`."""
    folder = newest_run(outputs) if spec is None else run_dir(spec, outputs)
    if folder.name == ADAPTER and not (folder / RUN_FILE).exists():
        folder = folder.parent
    if not folder.is_dir():
        raise missing_input(folder, "train.py", "run folder")
    for path in (folder / RUN_FILE, folder / ADAPTER / "adapter_config.json"):
        if not path.exists():
            raise HiveError(f"{folder} is not a complete training run: {path.name} is missing (train.py writes "
                            f"outputs/<run>/{ADAPTER}/ and {RUN_FILE}; pass the run's name or folder)")
    return Run(folder, RunRecord.load(folder))


def max_seq_length(record_value: int, cfg) -> int:
    """The context a trained model runs with: the command line's model.max_seq_length when given, else the value
    the run (or export) recorded."""
    return cfg.model.max_seq_length if cfg.from_command_line("model.max_seq_length") else record_value


# ---------------------------------------------------------------- checkpoints


def checkpoint_step(path: Path) -> Optional[int]:
    m = _CHECKPOINT.fullmatch(path.name)
    return int(m.group(1)) if m else None


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint the Trainer can resume from: its state is written last, after the weights."""
    return (checkpoint / "trainer_state.json").is_file() and any(
        (checkpoint / name).is_file() for name in ("adapter_model.safetensors", "model.safetensors",
                                                    "adapter_model.bin", "pytorch_model.bin"))


def checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoints in a run folder, oldest step first."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and checkpoint_step(p) is not None]
    return sorted((p for p in found if is_complete(p)), key=checkpoint_step)


def incomplete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders a crash left half-written (only by older Hive versions, or by copying), and the staging
    folder of a save that was cut off."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and checkpoint_step(p) is not None]
    staging = [folder / SAVING] if (folder / SAVING).exists() else []
    return sorted((p for p in found if not is_complete(p)), key=checkpoint_step) + staging


def remove_incomplete(folder: Path) -> list[str]:
    """Delete what incomplete_checkpoints() lists; returns their names (for a notice)."""
    gone = incomplete_checkpoints(folder)
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in gone]
