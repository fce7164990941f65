"""The Kaggle notebook: kaggle_training_notebook.py (jupytext "percent" format, the file we edit) rendered as the
.ipynb that Kaggle imports, with Hive's own code packed into one cell, so that the notebook file and the user's
exports are all a Kaggle session needs. Regenerate after editing the .py or any packed file:

    make notebook            # python -m hive.notebook: writes kaggle_training_notebook.ipynb beside the .py

jupytext (a dev dependency, see the Makefile) reads the percent format, so the cells are exactly the ones Jupyter
with jupytext shows for the .py. The packed cell holds the files named below as a base64 tar.xz and a version
(a hash of the files' names and contents); when the code has not changed, the cell is kept as it is, so the .ipynb
changes only where the notebook or the code did.
"""

import base64
import copy
import hashlib
import io
import json
import lzma
import re
import sys
import tarfile
from pathlib import Path

from hive import paths
from hive.fileio import atomic_write

SOURCE = "kaggle_training_notebook.py"
PACKED_FOLDERS = ("hive", "configs", "samples")
PACKED_FILES = ("training_config.yaml", "requirements.txt", "requirements-gpu.txt")
PAYLOAD_CELL = "hive-payload"
PAYLOAD_LINE = 1000  # characters of base64 per source line
VERSION = re.compile(r'^HIVE_PAYLOAD_VERSION = "([0-9a-f]+)"$', re.M)
# Kaggle reads this block on import: it preselects the "GPU T4 x2" accelerator and Internet access.
KAGGLE_METADATA = {
    "accelerator": "nvidiaTeslaT4",
    "isGpuEnabled": True,
    "isInternetEnabled": True,
    "language": "python",
    "sourceType": "notebook",
}


def packed_files(root: Path) -> list[str]:
    """What the notebook carries (paths relative to `root`): the library, the stage scripts, the config, the
    requirements, the accelerate config and the sample chats; no tests, benchmarks or caches."""
    found = [p for p in root.glob("*.py") if p.name != SOURCE] + [root / f for f in PACKED_FILES]
    for folder in PACKED_FOLDERS:
        found += [p for p in (root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and not p.name.startswith(".") and p.suffix != ".pyc"]
    return sorted(p.relative_to(root).as_posix() for p in found)


def payload_files(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in packed_files(root)}


def version(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:12]


def pack(files: dict[str, bytes]) -> bytes:
    """A tar.xz of `files` with no dates, owners or modes of this machine in it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME)


def unpack(cell_source: str) -> dict[str, bytes]:
    """The files in a packed cell's source, as the notebook's unpacking cell reads them."""
    namespace: dict = {}
    exec(cell_source, namespace)
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(namespace["HIVE_PAYLOAD"])), mode="r:xz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def payload_source(files: dict[str, bytes]) -> str:
    encoded = base64.b64encode(pack(files)).decode()
    lines = [encoded[i:i + PAYLOAD_LINE] for i in range(0, len(encoded), PAYLOAD_LINE)]
    return "\n".join([
        "# Hive's code, packed by `make notebook` (hive/notebook.py): hive/, the stage scripts, the config, the",
        "# requirements, configs/ and samples/ as a base64 tar.xz. Section 1 unpacks it into /tmp/hive. Do not edit.",
        f'HIVE_PAYLOAD_VERSION = "{version(files)}"',
        'HIVE_PAYLOAD = """',
        *lines,
        '"""',
    ])


def _payload_cell(notebook: dict) -> dict | None:
    return next((c for c in notebook["cells"] if c.get("id") == PAYLOAD_CELL), None)


def to_ipynb(text: str, files: dict[str, bytes], previous: dict | None = None) -> dict:
    """The nbformat 4.5 notebook of a percent-format script (stable cell ids, no outputs), with the packed cell
    after the first code cell (the settings). `previous`: the notebook as last written, whose packed cell is
    reused when it holds the same version of the files."""
    import jupytext
    import nbformat

    cells = jupytext.reads(text, fmt="py:percent").cells
    old = _payload_cell(previous) if previous else None
    match = VERSION.search("".join(old["source"])) if old else None
    source = "".join(old["source"]) if match and match[1] == version(files) else payload_source(files)
    payload = nbformat.v4.new_code_cell(source, metadata={"jupyter": {"source_hidden": True}})
    settings = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    cells.insert(settings + 1, payload)
    for i, cell in enumerate(cells):
        cell.id = PAYLOAD_CELL if cell is payload else f"hive-{i:02d}"
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kaggle": copy.deepcopy(KAGGLE_METADATA),
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    notebook.nbformat_minor = 5
    nbformat.validate(notebook)
    return notebook


def render(text: str, files: dict[str, bytes], previous: str | None = None) -> str:
    """The .ipynb file's text (Jupyter's own layout: one-space indent, keys sorted, trailing newline)."""
    import nbformat

    notebook = to_ipynb(text, files, json.loads(previous) if previous else None)
    return nbformat.writes(notebook).rstrip("\n") + "\n"


def write(source: Path) -> Path:
    target = source.with_suffix(".ipynb")
    previous = target.read_text(encoding="utf-8") if target.exists() else None
    text = render(source.read_text(encoding="utf-8"), payload_files(source.parent), previous)
    with atomic_write(target) as f:
        f.write(text)
    return target


if __name__ == "__main__":
    written = write(Path(sys.argv[1]) if len(sys.argv) > 1 else paths.REPO_DIR / SOURCE)
    print(f"wrote {written} ({written.stat().st_size / 1024:,.0f} KiB)")
