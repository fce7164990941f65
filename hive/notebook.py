"""The Kaggle notebook: kaggle_training_notebook.py (jupytext "percent" format, the file we edit) rendered as the
.ipynb that Kaggle imports. Regenerate after editing the .py:

    python -m hive.notebook            # writes kaggle_training_notebook.ipynb beside the .py

Only the subset of the format that the notebook uses (`# %%` and `# %% [markdown]` cells, an optional header); its
cells come out as jupytext 1.19 reads them, so Jupyter with jupytext opens the .py as the same notebook.
"""

import json
import re
import sys
from pathlib import Path

from hive import paths
from hive.fileio import atomic_write

SOURCE = "kaggle_training_notebook.py"
CELL_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
# Kaggle reads this block on import: it preselects the "GPU T4 x2" accelerator and Internet access.
KAGGLE_METADATA = {
    "accelerator": "nvidiaTeslaT4",
    "isGpuEnabled": True,
    "isInternetEnabled": True,
    "language": "python",
    "sourceType": "notebook",
}


def _without_header(lines: list[str]) -> list[str]:
    """Drop jupytext's commented YAML header (`# ---` ... `# ---`); its settings are rebuilt in to_ipynb."""
    if lines and lines[0] == "# ---":
        end = lines.index("# ---", 1)
        return lines[end + 1:]
    return lines


def _trimmed(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _uncommented(line: str) -> str:
    """A Markdown line as jupytext writes it: `# text`, or a bare `#` for an empty line."""
    if line.startswith("# "):
        return line[2:]
    if line == "#":
        return ""
    raise ValueError(f"Markdown cell line is not a comment: {line!r}")


def cells(text: str) -> list[tuple[str, list[str]]]:
    """(cell_type, source lines) of each cell of a percent-format script, in order."""
    result: list[tuple[str, list[str]]] = []
    kind, body = None, []
    for line in _without_header(text.splitlines()) + ["# %%"]:
        match = CELL_MARKER.match(line)
        if not match:
            body.append(line)
            continue
        body = _trimmed(body)
        if kind == "markdown":
            result.append((kind, [_uncommented(b) for b in body]))
        elif kind == "code" or body:
            result.append(("code", body))
        kind, body = ("markdown" if "[markdown]" in match["rest"] else "code"), []
    return result[:-1] if result and result[-1] == ("code", []) else result


def to_ipynb(text: str) -> dict:
    """The nbformat 4.5 notebook of a percent-format script (stable cell ids, no outputs)."""
    notebook_cells = []
    for i, (kind, lines) in enumerate(cells(text)):
        source = [line + "\n" for line in lines[:-1]] + lines[-1:]
        cell = {"cell_type": kind, "id": f"hive-{i:02d}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        notebook_cells.append(cell)
    return {
        "cells": notebook_cells,
        "metadata": {
            "kaggle": KAGGLE_METADATA,
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(text: str) -> str:
    """The .ipynb file's text (Jupyter's own layout: one-space indent, keys sorted, trailing newline)."""
    return json.dumps(to_ipynb(text), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write(source: Path) -> Path:
    target = source.with_suffix(".ipynb")
    with atomic_write(target) as f:
        f.write(render(source.read_text(encoding="utf-8")))
    return target


if __name__ == "__main__":
    written = write(Path(sys.argv[1]) if len(sys.argv) > 1 else paths.REPO_DIR / SOURCE)
    print(f"wrote {written}")
