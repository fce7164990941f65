"""Talking to a clone: load a run folder, an adapter, a merged model (transformers) or a .gguf (llama.cpp) with the
chat template, persona and generation settings it was trained and exported with, and generate replies.

`Clone.reply(history)` and `Clone.stream(history)` take the conversation without the system message (a list of
{"role": "user"|"assistant", "content"}); the persona is added and the oldest turns are dropped until the prompt
and the reply fit the context length. evaluate.py and export verification reuse this module.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import yaml

from hive import models
from hive.errors import HiveError, missing_input

TEST_MESSAGE = "hey, are we still on for tonight?"


@dataclass
class Run:
    """What train.py left in outputs/<run>/."""

    folder: Path
    adapter: Path  # final_model/: PEFT adapter + tokenizer with the trained chat template
    base_model: str  # as configured: hub id, folder, .gguf or a bundled name
    system_prompt: str | None
    max_seq_length: int | None  # from the run's resolved config


def newest_run(outputs: Path) -> Path:
    runs = [p.parent for p in outputs.glob("*/run.json")] if outputs.is_dir() else []
    if not runs:
        raise missing_input(f"{outputs}/<run>/run.json", "train.py", "trained run")
    return max(runs, key=lambda p: (p / "run.json").stat().st_mtime)


def load_run(folder: Path | None, outputs: Path) -> Run:
    """The run in `folder` (a run folder or its final_model/), or the newest one under `outputs`."""
    folder = newest_run(outputs) if folder is None else Path(folder)
    if folder.name == "final_model" and not (folder / "run.json").exists():
        folder = folder.parent
    run_json, adapter = folder / "run.json", folder / "final_model"
    if not folder.is_dir():
        raise missing_input(folder, "train.py", "run folder")
    for path in (run_json, adapter / "adapter_config.json"):
        if not path.exists():
            raise HiveError(f"{folder} is not a complete training run: {path.name} is missing (train.py writes "
                            f"outputs/<run>/final_model/ and run.json; pass --input outputs/<run>)")
    info = json.loads(run_json.read_text(encoding="utf-8"))
    if not info.get("base_model"):
        raise HiveError(f"{run_json} has no base_model; it is written by train.py, rerun it")
    config_file = folder / "config.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    max_len = ((config or {}).get("model") or {}).get("max_seq_length")
    return Run(folder, adapter, info["base_model"], info.get("system_prompt"), max_len)


@dataclass
class Reply:
    text: str = ""
    finish_reason: str = ""  # "stop": ended at a stop token; "length": ran into max_new_tokens
    tokens: int = 0


class _Transformers:
    """A transformers model + its tokenizer; the tokenizer's chat template formats the prompt."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        eos = model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.stop_ids = [i for i in dict.fromkeys([tokenizer.eos_token_id, *ids]) if i is not None]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return list(out["input_ids"])

    def stream(self, messages: list[dict], gen, result: Reply) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        ids = torch.tensor([self.prompt_ids(messages)], device=self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = (dict(do_sample=True, temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k)
                    if gen.temperature > 0 else dict(do_sample=False))
        output: dict = {}

        def generate():
            with torch.no_grad():
                output["ids"] = self.model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=gen.max_new_tokens,
                    repetition_penalty=gen.repetition_penalty, eos_token_id=self.stop_ids,
                    pad_token_id=self.tokenizer.pad_token_id or self.stop_ids[0], streamer=streamer, **sampling,
                )

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        for piece in streamer:
            result.text += piece
            yield piece
        worker.join()
        new = output["ids"][0, ids.shape[1]:].tolist()
        result.tokens = len(new)
        result.finish_reason = "stop" if new and new[-1] in self.stop_ids else "length"


class _LlamaCpp:
    """A llama.cpp model; `format` turns messages into the prompt text, `stops` end a reply early."""

    def __init__(self, llm, format: Callable[[list[dict]], str], stops: list[str]):
        self.llm, self.format, self.stops = llm, format, stops

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.llm.tokenize(self.format(messages).encode("utf-8"), add_bos=True, special=True)
        bos = self.llm.token_bos()
        # llama.cpp adds BOS itself where the model wants one; a template that also writes it would double it.
        return ids[1:] if len(ids) > 1 and ids[0] == ids[1] == bos else ids

    def close(self) -> None:
        self.llm.close()  # now, not at interpreter exit, when llama-cpp-python's cleanup fails noisily

    def stream(self, messages: list[dict], gen, result: Reply) -> Iterator[str]:
        chunks = self.llm.create_completion(
            self.prompt_ids(messages), max_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
            top_k=gen.top_k, repeat_penalty=gen.repetition_penalty, stop=self.stops or None, stream=True,
        )
        for chunk in chunks:
            choice = chunk["choices"][0]
            result.tokens += 1
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]
            if choice["text"]:
                result.text += choice["text"]
                yield choice["text"]


@dataclass
class Clone:
    backend: object  # _Transformers | _LlamaCpp
    gen: object  # the generation config section
    context_length: int
    system_prompt: str | None = None
    source: str = ""
    last: Reply = field(default_factory=Reply)

    def messages(self, history: list[dict]) -> list[dict]:
        """System prompt + the newest turns of `history` whose prompt leaves room for a full reply."""
        history = list(history)
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        budget = self.context_length - self.gen.max_new_tokens
        while True:
            n = len(self.backend.prompt_ids(system + history))
            if n <= budget:
                return system + history
            if len(history) <= 1:
                raise HiveError(f"the message is too long: its prompt is {n:,} tokens, but only {budget:,} fit the "
                                f"context of {self.context_length:,} tokens less generation.max_new_tokens")
            history.pop(0)
            while history and history[0]["role"] != "user":  # a conversation starts with the other person
                history.pop(0)

    def stream(self, history: list[dict]) -> Iterator[str]:
        """The reply to `history`, piece by piece; afterwards `self.last` holds the text and finish reason."""
        self.last = Reply()
        yield from self.backend.stream(self.messages(history), self.gen, self.last)

    def reply(self, history: list[dict]) -> str:
        return "".join(self.stream(history)).strip()

    def close(self) -> None:
        """Free the model now (llama.cpp's)."""
        if hasattr(self.backend, "close"):
            self.backend.close()


def _torch_settings():
    import torch

    if not torch.cuda.is_available():
        return "cpu", torch.float32
    return "cuda", torch.bfloat16 if models.cuda_half_precision() == "bf16" else torch.float16


def transformers_clone(model_dir: Path, gen, context_length: int, system_prompt: str | None,
                       base_model: str | None = None) -> Clone:
    """A merged model folder, or an adapter folder on top of `base_model` (hive.models names)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = _torch_settings()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if base_model is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(models.load_model(base_model, dtype=dtype), model_dir)
    else:
        quantized = "quantization_config" in json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        placement = {"device_map": device} if quantized else {}  # bitsandbytes weights load straight onto the GPU
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, **placement)
    if not getattr(model, "is_loaded_in_4bit", False) and not getattr(model, "hf_device_map", None):
        model = model.to(device)
    model.eval()
    torch.manual_seed(gen.seed)
    return Clone(_Transformers(model, tokenizer), gen, context_length, system_prompt, str(model_dir))


@contextlib.contextmanager
def native_errors_only():
    """Hide llama.cpp's log (per-tensor lines; written to fd 2 by C code and to sys.stderr by llama-cpp-python's log
    callback) but print again the lines that report an error or failure."""
    sys.stderr.flush()
    saved, python_stderr = os.dup(2), io.StringIO()
    with tempfile.TemporaryFile() as log, contextlib.redirect_stderr(python_stderr):
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            text = log.read().decode("utf-8", errors="replace") + python_stderr.getvalue()
            for line in text.splitlines():
                if "error" in line.lower() or "failed" in line.lower():
                    print(line, file=sys.stderr)


def has_llama_cpp() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def require_llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise HiveError('llama-cpp-python is not installed; install it with CMAKE_ARGS="-DGGML_NATIVE=OFF '
                        '-DLLAVA_BUILD=OFF" pip install llama-cpp-python (builds llama.cpp once, ~9 min on 2 cores)'
                        ) from None
    return llama_cpp


def llama_cpp_clone(gguf: Path, gen, context_length: int, system_prompt: str | None, lora: Path | None = None,
                    format: Callable[[list[dict]], str] | None = None, stops: list[str] | None = None) -> Clone:
    """A .gguf (optionally with a GGUF LoRA adapter) in llama.cpp. By default the chat template stored in the GGUF
    formats the prompt; export verification passes the Modelfile's template and stops instead."""
    require_llama_cpp()
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    with native_errors_only():
        llm = Llama(model_path=str(gguf), lora_path=str(lora) if lora else None, n_ctx=context_length,
                    n_threads=min(4, os.cpu_count() or 1), seed=gen.seed, verbose=False)
    context_length = min(context_length, llm.n_ctx())
    if format is None:
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise HiveError(f"{gguf} has no chat template; export it again with export_model.py")
        text = llm._model.token_get_text
        formatter = Jinja2ChatFormatter(template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()))
        format = lambda messages: formatter(messages=messages).prompt  # noqa: E731
    return Clone(_LlamaCpp(llm, format, stops or []), gen, context_length, system_prompt, str(gguf))


def _export_info(path: Path) -> dict:
    """export.json of the export that holds `path` (a file or folder inside exports/<name>/), else {}."""
    for folder in (path.parent, path.parent.parent, path):
        if (folder / "export.json").exists():
            return json.loads((folder / "export.json").read_text(encoding="utf-8"))
    return {}


def load_clone(source: str | Path | None, cfg) -> Clone:
    """A clone from what the user points at: a run folder (default: the newest), final_model/, an adapter or merged
    folder, an exports/<name>/ folder (its Modelfile's GGUF, else the merged model, else the adapter) or a .gguf.
    The persona and context length come from the run (run.json, config.yaml) or the export (export.json)."""
    outputs = cfg.path("outputs")
    path = Path(source) if source is not None else newest_run(outputs)
    if path.is_dir() and (path / "export.json").exists():
        info = json.loads((path / "export.json").read_text(encoding="utf-8"))
        path = path / (info.get("gguf") or ("merged_16bit" if (path / "merged_16bit").is_dir() else "lora"))
    in_run = (path / "adapter_config.json").exists() and (path.parent / "run.json").exists()  # final_model, checkpoint
    if in_run or (path / "run.json").exists() or (path / "final_model" / "adapter_config.json").exists():
        run = load_run(path.parent if in_run else path, outputs)
        model_dir = path if in_run else run.adapter
        ctx = run.max_seq_length or cfg.model.max_seq_length
        return transformers_clone(model_dir, cfg.generation, ctx, run.system_prompt, run.base_model)
    info = _export_info(path)
    ctx, system = info.get("num_ctx", cfg.model.max_seq_length), info.get("system_prompt")
    if path.suffix == ".gguf":
        if not path.is_file():
            raise missing_input(path, "export_model.py", "GGUF file")
        return llama_cpp_clone(path, cfg.generation, ctx, system, stops=info.get("stops"))
    if (path / "adapter_config.json").exists():
        adapter = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base = info.get("base_model") or adapter["base_model_name_or_path"]
        return transformers_clone(path, cfg.generation, ctx, system, base)
    if (path / "config.json").exists():
        return transformers_clone(path, cfg.generation, ctx, system)
    raise HiveError(f"nothing to chat with at {path}: pass a run folder (train.py writes outputs/<run>/), an adapter "
                    f"or merged model folder, an exports/<name>/ folder or a .gguf (export_model.py writes them)")
