"""Every stage script: `--help` shows its docstring's commands and exits 0, without loading anything heavy; each is a
docstring plus a short main(argv=None) -> int (the rule in DEVELOPERS.md)."""

import ast
import importlib
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPTS = ["extract", "convert", "validate_dataset", "fix_dataset", "clean_incomplete", "train", "evaluate",
           "export_model", "chat", "demo"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_the_commands_and_exits_zero(script, capsys):
    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f"python {script}.py" in out and "--config FILE" in out and "--set SECTION.KEY=VALUE" in out


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_is_a_docstring_and_a_short_main(script):
    tree = ast.parse((REPO / f"{script}.py").read_text(encoding="utf-8"))
    assert ast.get_docstring(tree).count(f"python {script}.py") >= 1 or script == "demo"
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert len(mains) == 1 and [a.arg for a in mains[0].args.args] == ["argv"]
    assert mains[0].end_lineno - mains[0].lineno + 1 <= 60, f"{script}.main is longer than 60 lines"


def test_help_imports_no_model_library():
    code = ("import sys, contextlib, io\n"
            f"for name in {SCRIPTS!r}:\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        __import__(name).main(['--help'])\n"
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
