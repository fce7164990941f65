"""Shared fixtures. Every test runs in its own project root (HIVE_HOME = a temporary folder), so no test reads or
writes the real dataset/, outputs/ or exports/."""

import io
import os
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(REPO))

# Tests never reach the hub; the bundled model is converted once per machine into the user's Hive cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def project(tmp_path, monkeypatch) -> Path:
    """A fresh, empty project root for each test."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("HIVE_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The bundled SmolLM2-135M-Instruct as a plain Hugging Face folder (converted once, then cached)."""
    from hive.models import hf_location

    return hf_location("smollm2-135m")


def _has_llama_cpp() -> bool:
    from hive.chat import has_llama_cpp

    return has_llama_cpp()


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.llama_cpp` tests need llama-cpp-python (CI installs it; a bare environment skips them)."""
    if any("llama_cpp" in item.keywords for item in items) and not _has_llama_cpp():
        skip = pytest.mark.skip(reason="llama-cpp-python is not installed (CI installs it)")
        for item in items:
            if "llama_cpp" in item.keywords:
                item.add_marker(skip)


SYSTEM = "You are Sam. Reply as Sam would on WhatsApp."


def _record(folder: Path, **fields) -> Path:
    from hive import runs

    folder.mkdir(parents=True, exist_ok=True)
    fields = {"base_model": "smollm2-135m", "max_seq_length": 512, "load_in_4bit": False, "system_prompt": SYSTEM,
              **fields}
    runs.RunRecord(**fields).save(folder)
    return folder


@pytest.fixture
def fake_run(project):
    """A factory of run folders without weights (run.json and an adapter_config.json): enough for everything that
    happens before a model is loaded."""
    def make(name: str = "r1", **fields) -> Path:
        folder = _record(project / "outputs" / name, **fields)
        (folder / "final_model").mkdir(exist_ok=True)
        (folder / "final_model" / "adapter_config.json").write_text("{}")
        return folder
    return make


@pytest.fixture(scope="session")
def make_run():
    """A factory of run folders as train.py writes them, on the bundled model, with a LoRA adapter whose B matrices
    are random with standard deviation `std` (the model changes but still ends its replies); std 0 leaves the adapter
    an exact no-op."""
    def make(folder: Path, std: float = 0.03, base_dir: str | None = None, **fields) -> Path:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from hive.models import hf_location

        base_dir = base_dir or hf_location("smollm2-135m")
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM"))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name and std:
                    param.normal_(std=std)
        model.save_pretrained(folder / "final_model")
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder / "final_model")
        return _record(folder, **fields)
    return make


class Parsed(NamedTuple):
    format: object      # hive.whatsapp.Format
    messages: list
    stats: object       # hive.whatsapp.ParseStats


def parse_export(data: "bytes | str", date_order: str = "auto") -> Parsed:
    """One export parsed the way extract reads a file: decoded (open_text), detected, its date order decided
    (DateOrders, alone in its run), streamed (iter_messages), and parsed again when a second header format shows."""
    from hive import whatsapp

    data = data.encode() if isinstance(data, str) else data
    orders = whatsapp.DateOrders({"export": whatsapp.detect(whatsapp.open_text(io.BytesIO(data)), date_order)},
                                 date_order)
    parsed = _parse_with(data, orders.format("export"))
    more = orders.with_other_formats(parsed.format, parsed.stats)
    return _parse_with(data, more) if more else parsed


def _parse_with(data: bytes, fmt) -> Parsed:
    from hive import whatsapp

    stats = whatsapp.ParseStats()
    return Parsed(fmt, list(whatsapp.iter_messages(whatsapp.open_text(io.BytesIO(data)), fmt, stats)), stats)


@pytest.fixture(scope="session")
def smollm2_gguf(smollm2_dir, tmp_path_factory) -> Path:
    """The bundled model as an f16 GGUF (converted once per session)."""
    from hive.export import convert_to_gguf

    gguf = tmp_path_factory.mktemp("gguf") / "smollm2-f16.gguf"
    convert_to_gguf(smollm2_dir, gguf, "f16")
    return gguf
