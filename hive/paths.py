"""Where things live. Every path in Hive comes from here.

The project root is $HIVE_HOME when set (tests point it at a temporary folder), otherwise the folder that holds
the stage scripts. Relative paths in the config are relative to that root. Nothing is created at import.
"""

import os
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    return Path(os.environ.get("HIVE_HOME") or REPO_DIR).resolve()


def resolve(path: str | os.PathLike) -> Path:
    """An absolute path: absolute stays, `~` expands, relative joins the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def display(path: str | os.PathLike) -> str:
    """How a path is printed in a command the user may copy: relative to the project root when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(project_root()))
    except ValueError:
        return str(p)


def cache_dir() -> Path:
    """Derived, re-creatable files (e.g. the bundled model converted to a Hugging Face folder)."""
    if os.environ.get("HIVE_CACHE"):
        return Path(os.environ["HIVE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "hive"


def config_file() -> Path:
    return project_root() / "training_config.yaml"


def validation_file(training_file: str | os.PathLike) -> Path:
    """The validation file that sits beside a training file: personality.jsonl -> personality.val.jsonl,
    data/train.json -> data/train.val.json. convert.py writes it, train.py and evaluate.py read it."""
    p = Path(training_file)
    return p.with_name(f"{p.stem}.val{p.suffix or '.jsonl'}")
