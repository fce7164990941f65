"""Talking to a clone: load a run folder, an adapter, a merged model (transformers) or a .gguf (llama.cpp) with the
chat template, persona and generation settings it was trained and exported with, and generate replies.

`Clone.reply(history)` and `Clone.stream(history)` take the conversation without the system message (a list of
{"role": "user"|"assistant", "content"}); the persona is added and prompt and reply are fitted into the context
(hive/generation.py). export_model.py's check reuses this module.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hive import generation, models, runs
from hive.errors import HiveError, missing_input

TEST_MESSAGE = "hey, are we still on for tonight?"


@dataclass
class Reply:
    text: str = ""
    finish_reason: str = ""  # "stop": ended at a stop token; "length": ran into max_new_tokens
    tokens: int = 0
    prompt_tokens: int = 0  # the prompt it answered: persona and the turns that fit


class _Transformers:
    """A transformers model + its tokenizer; the tokenizer's chat template formats the prompt."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return list(out["input_ids"])

    def stream(self, messages: list[dict], gen, max_new_tokens: int, result: Reply) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        ids = torch.tensor([self.prompt_ids(messages)], device=self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = generation.generate_kwargs(self.model, self.tokenizer, gen, max_new_tokens)
        stop_ids = kwargs["eos_token_id"]
        output: dict = {}

        def generate():
            with torch.no_grad():
                output["ids"] = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                    streamer=streamer, **kwargs)

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        for piece in streamer:
            result.text += piece
            yield piece
        worker.join()
        new = output["ids"][0, ids.shape[1]:].tolist()
        result.tokens = len(new)
        result.finish_reason = "stop" if new and (new[-1] in stop_ids or len(new) < max_new_tokens) else "length"


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

    def stream(self, messages: list[dict], gen, max_new_tokens: int, result: Reply) -> Iterator[str]:
        chunks = self.llm.create_completion(
            self.prompt_ids(messages), max_tokens=max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
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
    max_seq_length: int
    system_prompt: str | None = None
    source: str = ""
    last: Reply = field(default_factory=Reply)
    notice: Optional[str] = None  # said once: the reply budget was capped to fit the context

    def __post_init__(self):
        self.notice = generation.reply_budget(self.max_seq_length, self.gen.max_new_tokens)[1]

    @property
    def reply_tokens(self) -> int:
        """What a reply may take: generation.max_new_tokens (the API may change it per request), within the context."""
        return generation.reply_budget(self.max_seq_length, self.gen.max_new_tokens)[0]

    def messages(self, history: list[dict]) -> tuple[list[dict], int]:
        """(system prompt + the newest turns of `history` that fit, tokens left for the reply)."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return generation.fit_prompt(system + list(history), lambda m: len(self.backend.prompt_ids(m)),
                                     self.max_seq_length, self.reply_tokens)

    def stream(self, history: list[dict]) -> Iterator[str]:
        """The reply to `history`, piece by piece; afterwards `self.last` holds the text and finish reason."""
        self.last = Reply()
        messages, reply_tokens = self.messages(history)
        self.last.prompt_tokens = len(self.backend.prompt_ids(messages))
        yield from self.backend.stream(messages, self.gen, reply_tokens, self.last)

    def reply(self, history: list[dict]) -> str:
        return "".join(self.stream(history)).strip()

    def close(self) -> None:
        """Free the model now (llama.cpp's)."""
        if hasattr(self.backend, "close"):
            self.backend.close()


def transformers_clone(model_dir: Path, gen, max_seq_length: int, system_prompt: str | None,
                       base_model: str | None = None) -> Clone:
    """A merged model folder, or an adapter folder on top of `base_model` (hive.models names)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = models.inference_settings()
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
    return Clone(_Transformers(model, tokenizer), gen, max_seq_length, system_prompt, str(model_dir))


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


def llama_cpp_clone(gguf: Path, gen, max_seq_length: int, system_prompt: str | None, lora: Path | None = None,
                    format: Callable[[list[dict]], str] | None = None, stops: list[str] | None = None) -> Clone:
    """A .gguf (optionally with a GGUF LoRA adapter) in llama.cpp. By default the chat template stored in the GGUF
    formats the prompt; export verification passes the Modelfile's template and stops instead."""
    require_llama_cpp()
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    with native_errors_only():
        llm = Llama(model_path=str(gguf), lora_path=str(lora) if lora else None, n_ctx=max_seq_length,
                    n_threads=min(4, os.cpu_count() or 1), seed=gen.seed, verbose=False)
    max_seq_length = min(max_seq_length, llm.n_ctx())
    if format is None:
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise HiveError(f"{gguf} has no chat template; export it again with export_model.py")
        text = llm._model.token_get_text
        formatter = Jinja2ChatFormatter(template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()))
        format = lambda messages: formatter(messages=messages).prompt  # noqa: E731
    return Clone(_LlamaCpp(llm, format, stops or []), gen, max_seq_length, system_prompt, str(gguf))


def _export_of(path: Path) -> Optional[runs.ExportRecord]:
    """The record of the export that holds `path` (a file or folder inside exports/<name>/), if any."""
    for folder in (path.parent, path.parent.parent, path):
        if (folder / runs.EXPORT_FILE).exists():
            return runs.ExportRecord.load(folder)
    return None


def load_clone(source: str | Path | None, cfg) -> Clone:
    """A clone from what the user points at: a run (its name or folder; default: the newest), final_model/ or a
    checkpoint, an adapter or merged folder, an exports/<name>/ folder (its Modelfile's GGUF, else the merged model,
    else the adapter) or a .gguf. Persona and context come from the run's or the export's record; a
    --set model.max_seq_length on the command line overrides the context (runs.max_seq_length)."""
    outputs = cfg.path("outputs")
    path = runs.newest_run(outputs) if source is None else runs.run_dir(source, outputs)
    if not path.exists() and source is not None and not Path(str(source)).suffix:
        raise missing_input(path, "train.py or export_model.py", "run or export")
    if path.is_dir() and (path / runs.EXPORT_FILE).exists():
        record = runs.ExportRecord.load(path)
        path = path / (record.gguf or ("merged_16bit" if (path / "merged_16bit").is_dir() else "lora"))
    # `path` is a run's final_model or one of its checkpoints
    in_run = (path / "adapter_config.json").exists() and (path.parent / runs.RUN_FILE).exists()
    if in_run or (path / runs.RUN_FILE).exists() or (path / runs.ADAPTER / "adapter_config.json").exists():
        run = runs.load_run(path.parent if in_run else path, outputs)
        ctx = runs.max_seq_length(run.record.max_seq_length, cfg)
        return transformers_clone(path if in_run else run.adapter, cfg.generation, ctx, run.system_prompt,
                                  run.base_model)
    export = _export_of(path)
    ctx = runs.max_seq_length(export.max_seq_length, cfg) if export else cfg.model.max_seq_length
    system = export.system_prompt if export else None
    if path.suffix == ".gguf":
        if not path.is_file():
            raise missing_input(path, "export_model.py", "GGUF file")
        return llama_cpp_clone(path, cfg.generation, ctx, system, stops=export.stops if export else None)
    if (path / "adapter_config.json").exists():
        adapter = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base = export.base_model if export else adapter["base_model_name_or_path"]
        return transformers_clone(path, cfg.generation, ctx, system, base)
    if (path / "config.json").exists():
        return transformers_clone(path, cfg.generation, ctx, system)
    raise HiveError(f"nothing to chat with at {path}: pass a run (its name or folder; train.py writes outputs/<run>/), "
                    f"an adapter or merged model folder, an exports/<name>/ folder or a .gguf (export_model.py "
                    f"writes them)")
