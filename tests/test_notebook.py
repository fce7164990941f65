"""kaggle_training_notebook.py: plain Python in jupytext "percent" format, the shipped .ipynb generated from it, and
a dry run (HIVE_DRY_RUN=1: CPU, the bundled model, the sample chats) that executes its cells top to bottom, as
Jupyter does, and resumes from its checkpoint when the cells run again.

    python -m pytest -q tests/test_notebook.py           # the dry run is slow (a few minutes on 2 cores)
"""

import ast
import json

import pytest

from hive import notebook
from tests.conftest import REPO

SCRIPT = REPO / notebook.SOURCE


def test_cells_of_a_percent_script():
    text = "\n".join([
        "# ---", "# jupyter:", "#   kernelspec:", "#     name: python3", "# ---", "",
        "# %% [markdown]", "# # Title", "#", "# Some *text*.", "",
        "# %%", "x = 1", "", "", "# %%", "# a comment stays code", "print(x)", "",
    ])
    assert notebook.cells(text) == [
        ("markdown", ["# Title", "", "Some *text*."]),
        ("code", ["x = 1"]),
        ("code", ["# a comment stays code", "print(x)"]),
    ]


def test_markdown_cell_must_be_commented():
    with pytest.raises(ValueError, match="not a comment"):
        notebook.cells("# %% [markdown]\nplain text\n")


def test_ipynb_cells_and_metadata():
    nb = notebook.to_ipynb("# %% [markdown]\n# Hi\n\n# %%\na = 1\nb = 2\n")
    assert nb["nbformat"] == 4 and nb["metadata"]["kaggle"]["accelerator"] == "nvidiaTeslaT4"
    markdown, code = nb["cells"]
    assert (markdown["cell_type"], markdown["source"]) == ("markdown", ["Hi"])
    assert (code["cell_type"], code["source"], code["outputs"]) == ("code", ["a = 1\n", "b = 2"], [])
    assert markdown["id"] != code["id"]


def test_notebook_is_plain_python():
    source = SCRIPT.read_text(encoding="utf-8")
    ast.parse(source)
    magics = [line for line in source.splitlines() if line.lstrip().startswith(("!", "%"))]
    assert not magics, f"notebook magics are not Python: {magics}"
    kinds = [kind for kind, _ in notebook.cells(source)]
    assert kinds[0] == "markdown" and kinds.count("code") >= 8


def test_shipped_ipynb_is_generated_from_the_script():
    shipped = (REPO / "kaggle_training_notebook.ipynb").read_text(encoding="utf-8")
    assert shipped == notebook.render(SCRIPT.read_text(encoding="utf-8")), \
        "kaggle_training_notebook.ipynb is stale: run `python -m hive.notebook`"
    assert json.loads(shipped)["cells"][0]["cell_type"] == "markdown"


def execute(cells, namespace):
    for number, (kind, lines) in enumerate(cells):
        if kind == "code":
            exec(compile("\n".join(lines), f"{SCRIPT.name} cell {number}", "exec"), namespace)


@pytest.mark.slow
def test_dry_run_runs_every_cell_then_resumes(tmp_path, monkeypatch, capsys, smollm2_dir):
    monkeypatch.setenv("HIVE_DRY_RUN", "1")
    monkeypatch.setenv("HIVE_DRY_RUN_DIR", str(tmp_path / "kaggle"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.chdir(REPO)  # the dry run uses the checkout it is started from
    cells = notebook.cells(SCRIPT.read_text(encoding="utf-8"))

    execute(cells, {})
    out = capsys.readouterr().out
    working, scratch = tmp_path / "kaggle" / "working", tmp_path / "kaggle" / "tmp"
    run_dir = working / "outputs" / "kaggle"
    assert "starting run kaggle" in out and "single process on CPU" in out
    assert (run_dir / "final_model" / "adapter_model.safetensors").is_file()
    assert (run_dir / "eval.json").is_file()
    ggufs = sorted((working / "exports").rglob("*.gguf"))
    modelfiles = sorted((working / "exports").rglob("Modelfile"))
    assert ggufs and modelfiles
    assert f"MiB  {ggufs[-1]}" in out  # the download list
    # private data stays in scratch; only the run and the exports are in the saved folder
    assert (scratch / "final" / "personality.jsonl").is_file()
    assert sorted(p.name for p in working.iterdir()) == ["exports", "outputs"]

    # A new session: the same cells up to the training cell find the checkpoint and resume.
    train_cell = next(i for i, (_, lines) in enumerate(cells) if any('stage("train.py"' in line for line in lines))
    execute(cells[:train_cell + 1], {})
    out = capsys.readouterr().out
    assert f"resuming from {run_dir / 'checkpoint-2'}" in out
    assert f"train: resuming {run_dir / 'checkpoint-2'}" in out
