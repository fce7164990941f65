"""kaggle_training_notebook.py: plain Python in jupytext "percent" format; the shipped .ipynb generated from it with
Hive's code packed inside; and a dry run (HIVE_DRY_RUN=1: CPU, the bundled model) of that .ipynb alone, its cells
executed top to bottom in a fresh process in an empty folder, as Kaggle would, against a simulated /kaggle tree
with an attached exports dataset; then a second session that resumes from the first one's output attached as input.

    python -m pytest -q tests/test_notebook.py           # the dry run is slow (a few minutes on 2 cores)
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys

import jupytext
import pytest

from hive import notebook
from tests.conftest import REPO

SCRIPT = REPO / notebook.SOURCE
SHIPPED = SCRIPT.with_suffix(".ipynb")


def test_shipped_ipynb_is_current():
    shipped = SHIPPED.read_text(encoding="utf-8")
    current = notebook.render(SCRIPT.read_text(encoding="utf-8"), notebook.payload_files(REPO), previous=shipped)
    assert shipped == current, "kaggle_training_notebook.ipynb is stale (cells or packed code): run `make notebook`"


def test_packed_cell_holds_the_code_of_this_checkout():
    cell = next(c for c in json.loads(SHIPPED.read_text(encoding="utf-8"))["cells"] if c["id"] == notebook.PAYLOAD_CELL)
    files = notebook.unpack("".join(cell["source"]))
    assert files == notebook.payload_files(REPO), "the packed code differs from the checkout: run `make notebook`"
    assert {"hive/__init__.py", "hive/kaggle.py", "train.py", "training_config.yaml", "requirements-gpu.txt",
            "configs/accelerate_multi_gpu.yaml"} <= set(files)
    assert not [name for name in files if name.startswith(("tests/", "bench/")) or name == notebook.SOURCE]
    assert SHIPPED.stat().st_size < 256 * 1024  # Kaggle imports it in one request; keep it small


def test_percent_source_round_trips_through_jupytext():
    source = SCRIPT.read_text(encoding="utf-8")
    assert jupytext.writes(jupytext.reads(source, fmt="py:percent"), fmt="py:percent") == source


def test_ipynb_cells_metadata_and_packed_cell():
    files = {"hive/__init__.py": b"", "train.py": b"print('train')\n"}
    nb = notebook.to_ipynb("# %% [markdown]\n# Hi\n\n# %%\na = 1\nb = 2\n\n# %%\nc = 3\n", files)
    assert nb["nbformat"] == 4 and nb["metadata"]["kaggle"]["accelerator"] == "nvidiaTeslaT4"
    markdown, settings, packed, last = nb["cells"]
    assert (markdown["cell_type"], markdown["source"]) == ("markdown", "Hi")
    assert (settings["source"], settings["outputs"]) == ("a = 1\nb = 2", [])
    assert packed["id"] == notebook.PAYLOAD_CELL and packed["metadata"]["jupyter"]["source_hidden"]
    assert notebook.unpack(packed["source"]) == files and last["source"] == "c = 3"
    assert len({c["id"] for c in nb["cells"]}) == 4


def test_packed_cell_is_kept_while_the_code_is_the_same():
    text = "# %%\nx = 1\n"
    files = {"train.py": b"v1\n"}
    first = json.loads(notebook.render(text, files))
    cell = next(c for c in first["cells"] if c["id"] == notebook.PAYLOAD_CELL)
    cell["source"] = ["# kept\n"] + cell["source"]  # as if another xz version had encoded the same files
    kept = json.loads(notebook.render(text, files, previous=json.dumps(first)))
    assert "# kept\n" in next(c for c in kept["cells"] if c["id"] == notebook.PAYLOAD_CELL)["source"]
    changed = json.loads(notebook.render(text, {"train.py": b"v2\n"}, previous=json.dumps(first)))
    packed = next(c for c in changed["cells"] if c["id"] == notebook.PAYLOAD_CELL)
    assert notebook.unpack("".join(packed["source"])) == {"train.py": b"v2\n"}


def test_notebook_is_plain_python():
    source = SCRIPT.read_text(encoding="utf-8")
    ast.parse(source)
    magics = [line for line in source.splitlines() if line.lstrip().startswith(("!", "%"))]
    assert not magics, f"notebook magics are not Python: {magics}"
    cells = jupytext.reads(source, fmt="py:percent").cells
    assert cells[0].cell_type == "markdown" and sum(c.cell_type == "code" for c in cells) >= 8


def test_notebook_prose_states_no_benchmark_figure():
    """Figures live in the README (generated or tested there); a copy in the notebook would drift from it."""
    cells = jupytext.reads(SCRIPT.read_text(encoding="utf-8"), fmt="py:percent").cells
    prose = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert not re.findall(r"\d\.\d+ ?[x×]|\d[\d,.]* ?(?:tok/s|samples/s|it/s)", prose)


# ---------------------------------------------------------------- the dry run

RUNNER = """
import json, sys
until = sys.argv[2] if len(sys.argv) > 2 else None
namespace = {"__name__": "__main__"}
for cell in json.load(open(sys.argv[1], encoding="utf-8"))["cells"]:
    if cell["cell_type"] == "code":
        source = "".join(cell["source"])
        exec(compile(source, "cell " + cell["id"], "exec"), namespace)
        if until and until in source:
            break
"""
TRAIN_CELL = 'stage("train.py"'


def run_notebook(folder, root, until=None) -> str:
    """The shipped .ipynb alone in `folder`, run there in a new process whose imports cannot reach this checkout."""
    folder.mkdir()
    shutil.copy(SHIPPED, folder)
    env = {**os.environ, "HIVE_DRY_RUN": "1", "HIVE_DRY_RUN_DIR": str(root), "OMP_NUM_THREADS": "2"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", RUNNER, SHIPPED.name, *([until] if until else [])], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc.stdout


def attach_exports(root):
    dataset = root / "kaggle" / "input" / "my-whatsapp-exports"
    dataset.mkdir(parents=True)
    for chat in (REPO / "samples").glob("*.txt"):
        shutil.copy(chat, dataset)


@pytest.mark.slow
def test_dry_run_of_the_notebook_alone_then_a_session_resuming_from_its_output(tmp_path, smollm2_dir):
    root = tmp_path / "session1"
    attach_exports(root)
    out = run_notebook(tmp_path / "notebook1", root)

    working, scratch = root / "kaggle" / "working", root / "tmp" / "hive"
    run_dir = working / "outputs" / "kaggle"
    assert f"Hive code: {scratch}/code-" in out and "(packed into this notebook" in out
    assert "starting run kaggle" in out and "single process on CPU" in out
    assert (run_dir / "final_model" / "adapter_model.safetensors").is_file()
    ggufs = sorted((working / "exports").rglob("*.gguf"))
    assert ggufs and (working / "exports" / "hive-personality" / "Modelfile").is_file()
    assert f"MiB  {ggufs[-1]}" in out  # the download list
    # Private data stays in scratch: the dataset, the evaluation report, the stage logs; the saved folder holds
    # only the run and the export, and the cell output names none of the contacts.
    assert sorted(p.name for p in working.iterdir()) == ["exports", "outputs"]
    assert (scratch / "final" / "personality.jsonl").is_file()
    assert (scratch / "evaluation" / "kaggle" / "eval.json").is_file() and not list(run_dir.glob("eval*"))
    contacts = {re.sub(r"^WhatsApp Chat with | [0-9a-f]{8}$", "", p.stem) for p in (REPO / "samples").glob("*.txt")}
    assert "Alex G." in contacts and not [name for name in contacts if name in out]
    assert "me: Me" in out and "Alex G." in (scratch / "logs" / "extract.log").read_text(encoding="utf-8")

    # A new session: the first one's output attached as an input, cut short while it saved checkpoint-2, so
    # checkpoint-1 is the newest complete one; /kaggle/working starts empty.
    root2 = tmp_path / "session2"
    attach_exports(root2)
    previous = root2 / "kaggle" / "input" / "hive-notebook-v1" / "outputs" / "kaggle"
    shutil.copytree(run_dir, previous)
    shutil.rmtree(previous / "final_model")
    (previous / "checkpoint-2" / "adapter_model.safetensors").unlink()
    out = run_notebook(tmp_path / "notebook2", root2, until=TRAIN_CELL)

    run_dir2 = root2 / "kaggle" / "working" / "outputs" / "kaggle"
    assert f"resuming from {run_dir2 / 'checkpoint-1'}" in out
    assert f"train: resuming {run_dir2 / 'checkpoint-1'}" in out
    assert (run_dir2 / "final_model" / "adapter_model.safetensors").is_file()
    state = json.loads((run_dir2 / "checkpoint-2" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 2
