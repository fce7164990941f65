"""Shared fixtures. Every test runs in its own project root (HIVE_HOME = a temporary folder), so no test reads or
writes the real dataset/, outputs/ or exports/."""

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(REPO))

# Tests never reach the hub; the bundled model is converted once per machine into the user's Hive cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SYSTEM = "You are Sam. Reply as Sam would on WhatsApp."
needs_llama_cpp = pytest.mark.skipif(not __import__("hive.chat").chat.has_llama_cpp(),
                                     reason="llama-cpp-python is not installed (CI installs it)")


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


@pytest.fixture(scope="session")
def smollm2_gguf(smollm2_dir, tmp_path_factory) -> Path:
    """The bundled model as an f16 GGUF (converted once per session)."""
    from hive.export import convert_to_gguf

    gguf = tmp_path_factory.mktemp("gguf") / "smollm2-f16.gguf"
    convert_to_gguf(smollm2_dir, gguf, "f16")
    return gguf


def make_run(folder: Path, base_dir: str, system_prompt: str | None = SYSTEM, base_model: str = "smollm2-135m",
             lora_std: float = 0.03, max_seq_length: int = 512) -> Path:
    """A run folder as train.py writes it (final_model/ with the adapter and tokenizer, run.json, config.yaml). Its
    LoRA B matrices are random with `lora_std`, small enough by default that the model still ends its replies, so
    the adapter really changes the model; 0 gives an adapter that changes nothing."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=lora_std)
    model.save_pretrained(folder / "final_model")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder / "final_model")
    (folder / "run.json").write_text(json.dumps({"base_model": base_model, "system_prompt": system_prompt}))
    (folder / "config.yaml").write_text(f"model:\n  max_seq_length: {max_seq_length}\n")
    return folder
