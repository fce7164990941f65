"""The README's benchmark figures are rendered from the benchmarks' JSON (bench/results/*.json) by
bench/readme_figures.py, and each is stated once: a copy in other prose would drift from the measurement."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BLOCK = re.compile(r"<!-- figures: ([\w-]+) -->(.*?)<!-- /figures -->", re.S)
# a measured figure: a decimal (2.06, 0.7), a number with thousands separators (9,522), or a whole number with the
# unit of a result (203 ms, 3%, 4×, 116 inputs/s); not a version (torch 2.11, Llama-3.2, format_version: '1.3'), a
# negative setting (-1.0) or a size that a benchmark is given (1 MB, 15 GiB, batch 4 × 4)
FIGURE = re.compile(r"(?<![\w.,'])(?<!\D-)(?<!torch )(?<!transformers )(?<!TRL )(?<!Unsloth )(?<!Python )"
                    r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+"
                    r"|\d+(?=×| ?(?:ms|%|min|tok/s|tokens/s|samples/s|inputs/s)(?!\w)))(?![\w.,]?\d)")
PROSE = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "kaggle_training_notebook.py"]


def generated(text: str) -> dict[str, set[str]]:
    """Block name -> the figures it states."""
    return {name: set(FIGURE.findall(body)) for name, body in BLOCK.findall(text)}


def outside_blocks(path: Path) -> str:
    return BLOCK.sub("", path.read_text(encoding="utf-8"))


def test_the_readme_figures_are_those_of_bench_results():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "readme_figures.py"), "--check"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "match bench/results" in done.stdout


def test_the_figure_pattern_finds_figures_and_skips_versions():
    text = ("2.06× the samples/s, 9,522 tok/s, 0.10-1.02 s, 203 ms, echo 3%, 4×; torch 2.11, Python 3.12, "
            "Llama-3.2-3B, v1.2.3, '1.3', got -1.0, 2026-12-02, 4 rows, batch 4 × 4, 1 x H100, 15 GiB, 1 MB, 5 minutes")
    assert FIGURE.findall(text) == ["2.06", "9,522", "0.10", "1.02", "203", "3", "4"]


@pytest.mark.parametrize("path", PROSE, ids=lambda p: p.name)
def test_no_generated_figure_is_stated_again_elsewhere(path):
    figures = {figure: name for name, found in generated(README.read_text(encoding="utf-8")).items()
               for figure in found}
    assert figures, "the README has no generated figures"
    again = sorted(f"{figure} (block {figures[figure]})" for figure in set(FIGURE.findall(outside_blocks(path)))
                   if figure in figures)
    assert not again, f"{path.name} states figures that a README block generates; refer to the block instead: {again}"


def test_the_speed_ups_and_training_speeds_are_generated_and_stated_nowhere_else():
    blocks = generated(README.read_text(encoding="utf-8"))
    speed_ups, speeds = blocks["several-gpus"], blocks["training-speed"]
    assert len(speed_ups) >= 2 and len(speeds) >= 6
    for path in PROSE[1:]:
        text = path.read_text(encoding="utf-8")
        assert not speed_ups & set(FIGURE.findall(text)), f"{path.name} states the 2-GPU speed-up"
        assert not speeds & set(FIGURE.findall(text)), f"{path.name} states the training speed"
