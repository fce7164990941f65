"""Shared fixtures. Every test runs in its own project root (HIVE_HOME = a temporary folder), so no test reads or
writes the real dataset/, outputs/ or exports/."""

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
