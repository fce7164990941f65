"""chat.py and hive.chat: history trimming keeps the newest turns within the context, the terminal loop's commands,
and (slow) one reply from an adapter run and from a GGUF through `chat.py --prompt`.

    python -m pytest -q tests/test_chat.py
"""

import io
from types import SimpleNamespace

import pytest

import chat as chat_script
from hive import chat
from hive.errors import HiveError
from tests.conftest import SYSTEM

GEN = SimpleNamespace(max_new_tokens=10, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, seed=0)


class WordBackend:
    """A stand-in model: one token per word (plus 2 per message), replies with a fixed text."""

    def __init__(self, reply: str = "sure thing"):
        self.reply, self.prompts, self.budgets = reply, [], []

    def prompt_ids(self, messages):
        return [0] * sum(len(m["content"].split()) + 2 for m in messages)

    def stream(self, messages, gen, max_new_tokens, result):
        self.prompts.append(messages)
        self.budgets.append(max_new_tokens)
        for word in self.reply.split():
            result.text += word + " "
            yield word + " "
        result.finish_reason = "stop"


def turns(n: int) -> list[dict]:
    history = []
    for i in range(n):
        history += [{"role": "user", "content": f"question {i} " * 3}, {"role": "assistant", "content": f"answer {i}"}]
    return history + [{"role": "user", "content": "last one"}]


def test_history_keeps_the_newest_turns_that_fit():
    clone = chat.Clone(WordBackend(), GEN, max_seq_length=50, system_prompt="be Sam")
    messages, budget = clone.messages(turns(10))
    assert budget == GEN.max_new_tokens and clone.notice is None
    assert messages[0] == {"role": "system", "content": "be Sam"}
    assert messages[1]["role"] == "user" and messages[-1]["content"] == "last one"
    assert len(clone.backend.prompt_ids(messages)) <= 50 - GEN.max_new_tokens
    kept = len(messages) - 1
    assert messages[1:] == turns(10)[-kept:]
    assert len(clone.backend.prompt_ids([messages[0], *turns(10)[-kept - 2:]])) > 40  # one more turn would not fit


def test_short_history_is_untouched_and_only_a_message_that_cannot_fit_alone_is_an_error():
    clone = chat.Clone(WordBackend(), GEN, max_seq_length=200)
    assert clone.messages(turns(2)) == (turns(2), GEN.max_new_tokens)
    long = [{"role": "user", "content": "word " * 190}]  # 192 prompt tokens: 8 left, less than max_new_tokens (10)
    assert clone.messages(turns(3)[:-1] + long) == (long, 8)
    with pytest.raises(HiveError, match="too long.*send a shorter message"):
        clone.messages([{"role": "user", "content": "word " * 300}])


def test_a_context_smaller_than_the_reply_budget_still_answers():
    """The demo's export: a 128-token context and generation.max_new_tokens 128."""
    gen = SimpleNamespace(**{**vars(GEN), "max_new_tokens": 128})
    clone = chat.Clone(WordBackend(), gen, max_seq_length=128, system_prompt="be Sam")
    assert clone.reply_tokens == 64 and "capped at 64 tokens" in clone.notice
    messages, budget = clone.messages(turns(6))
    assert budget == 64 and len(clone.backend.prompt_ids(messages)) <= 64 and messages[-1]["content"] == "last one"
    assert clone.reply(turns(6)) == "sure thing" and clone.backend.budgets == [64]


def test_terminal_loop_reset_and_quit(monkeypatch, capsys, project):
    backend = WordBackend("hi there")
    monkeypatch.setattr(chat, "load_clone", lambda source, cfg: chat.Clone(backend, GEN, 500, SYSTEM, "fake"))
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\nhow are you\n/reset\nagain\n/quit\nnever read\n"))
    assert chat_script.main(["somewhere"]) == 0
    out = capsys.readouterr().out
    assert out.count("clone> hi there") == 3
    assert "(conversation forgotten)" in out
    assert [len(p) for p in backend.prompts] == [2, 4, 2]  # system + turns; /reset started over
    assert backend.prompts[1][2] == {"role": "assistant", "content": "hi there"}


def test_ctrl_d_ends_the_conversation(monkeypatch, capsys, project):
    monkeypatch.setattr(chat, "load_clone", lambda source, cfg: chat.Clone(WordBackend(), GEN, 500, None, "fake"))
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    assert chat_script.main([]) == 0
    assert "turns  1" in capsys.readouterr().out


def test_nothing_to_chat_with_names_the_stages(project):
    with pytest.raises(HiveError, match="train.py"):
        chat_script.main(["--prompt", "hi"])  # no run in outputs/
    with pytest.raises(HiveError, match="export_model.py"):
        chat_script.main([str(project / "missing.gguf"), "--prompt", "hi"])
    (project / "empty").mkdir()
    with pytest.raises(HiveError, match="nothing to chat with"):
        chat_script.main([str(project / "empty"), "--prompt", "hi"])


@pytest.mark.slow
def test_prompt_answers_from_an_adapter_run(make_run, project, capsys):
    run = make_run(project / "outputs" / "run1")
    assert chat_script.main(["--prompt", "hey, are you free tonight?", "--max-new-tokens", "24"]) == 0  # newest run
    out = capsys.readouterr().out
    assert f"persona: {SYSTEM}" in out and str(run) in out
    reply = out.split("tokens\n", 1)[1].strip()
    assert reply


@pytest.mark.slow
@pytest.mark.llama_cpp
def test_prompt_answers_from_a_gguf(smollm2_gguf, project, capsys):
    argv = [str(smollm2_gguf), "--prompt", "What is the capital of France?", "--temperature", "0"]
    assert chat_script.main(argv) == 0
    reply = capsys.readouterr().out.split("tokens\n", 1)[1].strip()
    assert "Paris" in reply
