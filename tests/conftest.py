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
