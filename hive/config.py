"""The one configuration of every stage: defaults (below) < training_config.yaml < command-line flags.

Each section is a dataclass; its field types and ranges are enforced when the config loads, before any slow work.
Unknown keys, wrong types and values out of range are collected and reported together, with the closest valid key
suggested. training_config.yaml documents every key.
"""

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from hive import paths
from hive.errors import ConfigError, HiveError
from hive.privacy import KINDS as REDACT_KINDS


def bounded(default, *, min=None, max=None, above=None, below=None, also=()):
    """A numeric field with its valid range: min/max inclusive, above/below exclusive; `also` lists extra allowed
    values outside the range (e.g. -1 for "off"). None always passes where the type allows it."""
    limits = {"min": min, "max": max, "above": above, "below": below, "also": tuple(also)}
    return field(default=default, metadata={"range": limits})


def _range_problem(value, limits: dict) -> str | None:
    if value is None or value in limits["also"]:
        return None
    checks = [("min", lambda v, b: v >= b, ">= {}"), ("above", lambda v, b: v > b, "> {}"),
              ("max", lambda v, b: v <= b, "<= {}"), ("below", lambda v, b: v < b, "< {}")]
    wanted = [text.format(limits[k]) for k, ok, text in checks if limits[k] is not None]
    if all(ok(value, limits[k]) for k, ok, _ in checks if limits[k] is not None):
        return None
    allowed = " and ".join(wanted) + "".join(f" (or {a})" for a in limits["also"])
    return f"must be {allowed}, got {value}"


@dataclass
class PathsConfig:
    raw: str = "dataset/raw"
    cleaned: str = "dataset/cleaned"
    final: str = "dataset/final/personality.jsonl"
    outputs: str = "outputs"
    exports: str = "exports"
    private: str = "private"


@dataclass
class ExtractConfig:
    me: list[str] = field(default_factory=list)
    date_order: Literal["auto", "DMY", "MDY", "YMD"] = "auto"
    redact: list[Literal[REDACT_KINDS]] = field(default_factory=lambda: list(REDACT_KINDS))
    pseudonymize: bool = False
    write_plain: bool = False


@dataclass
class ConvertConfig:
    mode: Literal["reply", "sliding"] = "reply"
    merge_gap_minutes: float = bounded(10.0, min=0)
    session_gap_hours: float = bounded(4.0, above=0)
    max_context_turns: int = bounded(8, min=1)
    system_prompt: Optional[str] = None
    non_text_context: Literal["placeholder", "drop"] = "placeholder"
    min_reply_chars: int = bounded(1, min=0)
    max_reply_chars: int = bounded(2000, min=1)
    dedupe: bool = True
    validation_fraction: float = bounded(0.05, min=0.0, max=0.5)
    seed: int = 42


@dataclass
class ModelConfig:
    base_model: str = "unsloth/Llama-3.2-3B-Instruct"
    max_seq_length: int = bounded(2048, min=16)
    load_in_4bit: bool = True
    chat_template: Literal["auto", "chatml", "llama3"] = "auto"


@dataclass
class LoraConfig:
    r: int = bounded(16, min=1)
    lora_alpha: int = bounded(16, min=1)
    lora_dropout: float = bounded(0.0, min=0.0, below=1.0)
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    bias: Literal["none", "all", "lora_only"] = "none"


@dataclass
class TrainingConfig:
    backend: Literal["auto", "unsloth", "transformers"] = "auto"
    run_name: Optional[str] = None
    num_train_epochs: float = bounded(2.0, above=0)
    max_steps: int = bounded(-1, min=1, also=(-1,))
    max_samples: Optional[int] = bounded(None, min=1)
    per_device_train_batch_size: int = bounded(16, min=1)
    gradient_accumulation_steps: int = bounded(1, min=1)
    learning_rate: float = bounded(3e-4, above=0, max=1)
    lr_scheduler_type: str = "linear"
    warmup_steps: int = bounded(10, min=0)
    weight_decay: float = bounded(0.01, min=0)
    max_grad_norm: float = bounded(0.3, min=0)
    optim: str = "auto"
    packing: Union[Literal["auto"], bool] = "auto"
    group_by_length: bool = True
    max_tokens_per_pass: int = bounded(4096, min=32, also=(0,))
    assistant_only_loss: bool = True
    gradient_checkpointing: bool = True
    logging_steps: int = bounded(25, min=1)
    eval_steps: int = bounded(500, min=1)
    save_steps: int = bounded(500, min=1)
    save_total_limit: int = bounded(2, min=1)
    save_minutes: float = bounded(15.0, min=0)
    ddp_timeout_minutes: float = bounded(10.0, above=0)
    report_to: Literal["none", "tensorboard"] = "none"
    seed: int = 42


@dataclass
class GenerationConfig:
    max_new_tokens: int = bounded(128, min=1)
    temperature: float = bounded(1.0, min=0)
    top_p: float = bounded(0.95, above=0, max=1)
    top_k: int = bounded(50, min=0)
    repetition_penalty: float = bounded(1.0, above=0)
    seed: int = 0


@dataclass
class EvaluateConfig:
    max_samples: int = bounded(200, min=1)
    style_samples: int = bounded(50, min=1)
    examples: int = bounded(5, min=0)
    batch_size: int = bounded(8, min=1)


@dataclass
class ExportConfig:
    name: str = "hive-personality"
    formats: list[Literal["lora", "merged_16bit", "merged_4bit", "gguf", "lora_gguf", "all"]] = field(
        default_factory=lambda: ["gguf"]
    )
    quantization: list[Literal["q4_k_m", "q5_k_m", "q8_0", "f16", "bf16"]] = field(default_factory=lambda: ["q4_k_m"])
    verify: bool = True
    require_improvement: Literal["off", "warn", "refuse"] = "warn"


@dataclass
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    # "section.key" names set on the command line (--set or a stage's flag): they win over a run's own settings
    command_line: frozenset = field(default=frozenset(), repr=False, compare=False)

    def path(self, key: str) -> Path:
        """An absolute path from the `paths` section (relative ones are under the project root)."""
        return paths.resolve(getattr(self.paths, key))

    def from_command_line(self, key: str) -> bool:
        return key in self.command_line

    def to_dict(self) -> dict:
        return {section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS}


SECTIONS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "command_line"}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of ({_type_name(typing.get_args(tp)[0])})"
    return "null" if tp is type(None) else tp.__name__


def _coerce(value: Any, tp) -> Any:
    """`value` as type `tp`, or raise ValueError. Only lossless conversions (int -> float, scalar -> [scalar])."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except ValueError:
                pass
        raise ValueError
    if tp is type(None):
        if value is None:
            return None
        raise ValueError
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ValueError
    if origin is list:
        items = value if isinstance(value, list) else [value]
        if value is None:
            raise ValueError
        return [_coerce(v, typing.get_args(tp)[0]) for v in items]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return float(value)  # YAML 1.1 reads "1e-4" (no dot) as a string; float() raises ValueError itself
        raise ValueError
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    raise AssertionError(f"unsupported config type {tp}")


def _suggest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else f"; valid: {', '.join(options)}"


def _merge(cfg: Config, data: dict, origin: str, problems: list[str]) -> None:
    if not isinstance(data, dict):
        problems.append(f"{origin}: expected a mapping of sections, got {type(data).__name__}")
        return
    for section, values in data.items():
        if section not in SECTIONS:
            problems.append(f"{section}: unknown section{_suggest(str(section), SECTIONS)}")
            continue
        if values is None:
            continue
        if not isinstance(values, dict):
            problems.append(f"{section}: expected a mapping of keys, got {type(values).__name__}")
            continue
        target = getattr(cfg, section)
        hints = typing.get_type_hints(type(target))
        limits = {f.name: f.metadata["range"] for f in dataclasses.fields(target) if "range" in f.metadata}
        for key, value in values.items():
            if key not in hints:
                suggestion = _suggest(f"{section}.{key}", [f"{section}.{k}" for k in hints])
                problems.append(f"{section}.{key}: unknown key{suggestion}")
                continue
            try:
                value = _coerce(value, hints[key])
            except ValueError:
                problems.append(f"{section}.{key}: expected {_type_name(hints[key])}, got {value!r}")
                continue
            problem = _range_problem(value, limits[key]) if key in limits else None
            if problem:
                problems.append(f"{section}.{key}: {problem}")
            else:
                setattr(target, key, value)


def _cross_problems(cfg: Config) -> list[str]:
    """Rules between keys, checked once each key is valid on its own."""
    problems = []
    if cfg.convert.min_reply_chars > cfg.convert.max_reply_chars:
        problems.append(f"convert.min_reply_chars ({cfg.convert.min_reply_chars}) is above convert.max_reply_chars "
                        f"({cfg.convert.max_reply_chars})")
    if not cfg.lora.target_modules:
        problems.append("lora.target_modules is empty; list the layers that get adapters, e.g. [q_proj, v_proj]")
    return problems


def _yaml_problem(file: Path, error: yaml.YAMLError) -> str:
    """Where the YAML is broken (line and column, as an editor counts them) and what the parser expected."""
    mark = getattr(error, "problem_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
    what = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    return f"{where}: not valid YAML ({what}{f', {context}' if context else ''}); fix that line"


def parse_override(text: str) -> tuple[str, Any]:
    """`section.key=value` from --set; the value is read as YAML (so 3e-4, true, [a, b] and null work)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise HiveError(f"--set {text!r}: expected section.key=value, e.g. --set training.learning_rate=1e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults < the YAML file (training_config.yaml in the project root unless `path`) < `overrides`.

    `overrides` maps "section.key" to a value (from --set and the per-script flags).
    Raises ConfigError listing every problem.
    """
    cfg = Config()
    problems: list[str] = []
    file = Path(path) if path else paths.config_file()
    if path and not file.exists():
        raise HiveError(f"config file not found: {file} (pass --config with an existing file, or omit it)")
    if file.exists():
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise HiveError(_yaml_problem(file, e)) from None
        except UnicodeDecodeError:
            raise HiveError(f"{file} is not UTF-8 text; save it as UTF-8") from None
        _merge(cfg, data, str(file), problems)
    nested: dict[str, dict] = {}
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        nested.setdefault(section, {})[key] = value
    _merge(cfg, nested, "command line", problems)
    if not problems:
        problems = _cross_problems(cfg)
    if problems:
        raise ConfigError(problems, source=str(file) if file.exists() else "configuration")
    cfg.command_line = frozenset(overrides or ())
    return cfg


def format_settings(cfg: Config, sections: typing.Sequence[str]) -> str:
    """The resolved settings of the named sections, one `section.key: value` per line."""
    lines = []
    for section in sections:
        for key, value in dataclasses.asdict(getattr(cfg, section)).items():
            lines.append(f"  {section}.{key}: {value!r}" if isinstance(value, str) else f"  {section}.{key}: {value}")
    return "\n".join(lines)
