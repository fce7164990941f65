"""chat.py's conversation as a person has it: in a real pseudo-terminal, typed line by line, with /reset, /quit and
Ctrl-D. The bundled GGUF, greedy, with a persona: every reply shown must be the clone's reply to that history
(bubble by bubble), end at a stop token, and differ without the persona.

    python -m pytest -q tests/test_chat_terminal.py
"""

import os
import select
import subprocess
import sys
import time

import pytest

from hive import bubbles, runs
from hive.chat import load_clone
from hive.config import load_config
from hive.models import bundled_gguf
from tests.conftest import REPO, SYSTEM

FLAGS = ["--temperature", "0", "--max-new-tokens", "64"]
TYPED = ["haha ok see you then", "wait what time again?", "are you coming or not"]


class Terminal:
    """A program on a pseudo-terminal: what it prints is read as a person would see it."""

    def __init__(self, argv: list[str], cwd, env: dict):
        master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.fd, self.screen, self.read = master, "", 0

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def until(self, marker: str, timeout: float = 300) -> str:
        """What appeared since the last call, up to and including `marker`."""
        deadline = time.monotonic() + timeout
        while marker not in self.screen[self.read:]:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {marker!r} within {timeout} s; the screen ends with:\n{self.screen[-2000:]}"
            try:
                data = os.read(self.fd, 4096)
            except OSError:  # EIO: the program has ended
                data = b""
            assert data, f"the program ended before {marker!r}; the screen ends with:\n{self.screen[-2000:]}"
            self.screen += data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        end = self.screen.index(marker, self.read) + len(marker)
        text, self.read = self.screen[self.read:end], end
        return text

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.fd)


def shown(text: str) -> list[str]:
    return [line.removeprefix("clone> ") for line in text.splitlines() if line.startswith("clone> ")]


@pytest.fixture
def export(project):
    """An exports/ folder as export_model.py writes it, around the bundled GGUF, with a persona."""
    folder = project / "exports" / "sam"
    folder.mkdir(parents=True)
    (folder / "sam.gguf").symlink_to(bundled_gguf("smollm2-135m"))
    runs.ExportRecord(name="sam", run="sam", base_model="smollm2-135m", max_seq_length=512, system_prompt=SYSTEM,
                      gguf="sam.gguf").save(folder)
    return folder


def expected_replies(export) -> list[str]:
    """The clone's replies to the typed conversation, with a /reset before the last message."""
    clone = load_clone(export, load_config(None, {"generation.temperature": 0, "generation.max_new_tokens": 64}))
    try:
        history, replies = [], []
        for i, text in enumerate(TYPED):
            if i == 2:
                kept = history + [{"role": "user", "content": text}]
                history = []
            history.append({"role": "user", "content": text})
            replies.append(clone.reply(history))
            assert clone.last.finish_reason == "stop", replies[-1]
            history.append({"role": "assistant", "content": replies[-1]})
        assert clone.reply(kept) != replies[2]  # so the terminal shows whether /reset forgot
        clone.system_prompt = None
        assert clone.reply(history[:1]) != replies[0]  # so the terminal shows whether the persona is used
        return replies
    finally:
        clone.close()


@pytest.mark.slow
@pytest.mark.llama_cpp
def test_a_conversation_typed_in_a_terminal(export, project):
    replies = expected_replies(export)
    env = {**os.environ, "TERM": "dumb", "PYTHONUNBUFFERED": "1"}
    term = Terminal([sys.executable, str(REPO / "chat.py"), str(export), *FLAGS], project, env)
    try:
        assert f"persona: {SYSTEM}" in term.until("you> ")
        for i, (text, reply) in enumerate(zip(TYPED, replies)):
            if i == 2:
                term.type("/reset\n")
                assert "(conversation forgotten)" in term.until("you> ")
            term.type(text + "\n")
            screen = term.until("you> ")
            assert shown(screen) == bubbles.split(reply) and "cut off" not in screen
        term.type("\x04")  # Ctrl-D on an empty line
        term.until("turns  3")
    finally:
        code = term.close()
    assert code == 0


@pytest.mark.slow
@pytest.mark.llama_cpp
def test_quit_leaves_at_once(export, project):
    env = {**os.environ, "TERM": "dumb"}
    term = Terminal([sys.executable, str(REPO / "chat.py"), str(export), *FLAGS], project, env)
    try:
        term.until("you> ")
        term.type("\n/quit\n")
        term.until("turns  0")
    finally:
        code = term.close()
    assert code == 0
