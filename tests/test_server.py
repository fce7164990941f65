"""chat.py --serve (hive.server), through the official `openai` client against a real server on 127.0.0.1: the clone's
persona, history and generation settings reach the model, streamed and not, bubbles on request, the API key and the
loopback rule; (slow) for a run folder and for a GGUF, the server's greedy reply is chat.py's, token for token.

    python -m pytest -q tests/test_server.py              # add -m "not slow" for the fast ones only
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

import chat as chat_script
from hive import bubbles, chat, runs, server
from hive.config import GenerationConfig
from hive.errors import HiveError
from tests.conftest import REPO, SYSTEM

openai = pytest.importorskip("openai")


class ScriptedBackend:
    """A stand-in model: one token per word (plus 2 per message); replies with `reply` and records every call."""

    def __init__(self, reply: str):
        self.reply, self.calls = reply, []

    def prompt_ids(self, messages):
        return [0] * sum(len(m["content"].split()) + 2 for m in messages)

    def stream(self, messages, gen, max_new_tokens, result):
        self.calls.append((messages, gen))
        for piece in self.reply.split(" "):
            result.text += piece + " "
            result.tokens += 1
            yield piece + " "
        result.finish_reason = "stop"


@contextlib.contextmanager
def serving(clone, api_key=None):
    """hive.server's app under uvicorn in a thread, on a free port of 127.0.0.1; stopped on the way out."""
    import uvicorn

    app = server.create_app(clone, api_key, name="sam")
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not web.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{web.servers[0].sockets[0].getsockname()[1]}/v1"
    finally:
        web.should_exit = True
        thread.join(timeout=10)


def client(url: str, key: str = "none", timeout: float = 60):
    return openai.OpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=0)


def fake_clone(reply: str = "hey!\n  yes i'm in \n\nsee you at 8", context: int = 200):
    return chat.Clone(ScriptedBackend(reply), GenerationConfig(), context, SYSTEM, "outputs/sam/final_model")


def test_replies_come_from_the_clone_with_its_persona_and_settings():
    clone = fake_clone()
    with serving(clone) as url:
        api = client(url)
        assert [m.id for m in api.models.list().data] == ["sam"]
        history = [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "you in?"}]
        done = api.chat.completions.create(model="gpt-4o", messages=history)
        choice = done.choices[0]
        assert choice.message.content == clone.reply([{"role": "user", "content": "you in?"}])
        assert choice.message.content.startswith("hey!\n") and choice.finish_reason == "stop"
        messages, gen = clone.backend.calls[0]
        assert messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "you in?"}]
        assert done.model == "sam" and done.usage.prompt_tokens == len(clone.backend.prompt_ids(messages))
        assert done.usage.completion_tokens == 9 and not (choice.message.model_extra or {}).get("bubbles")
        assert gen == GenerationConfig()  # what the request left out is the config's, not llama_cpp.server's

        api.chat.completions.create(model="sam", messages=history[1:], temperature=0, top_p=0.5, max_tokens=5,
                                    extra_body={"top_k": 3, "repeat_penalty": 1.3})
        api.chat.completions.create(model="sam", messages=history[1:], max_completion_tokens=7)
        gens = [gen for _, gen in clone.backend.calls[-2:]]
        assert gens[0] == GenerationConfig(temperature=0, top_p=0.5, max_new_tokens=5, top_k=3, repetition_penalty=1.3)
        assert gens[1] == GenerationConfig(max_new_tokens=7)
        assert clone.gen == GenerationConfig()  # a request's settings end with it


def test_bubbles_on_request_and_a_stream_that_adds_up_to_the_reply():
    clone = fake_clone()
    with serving(clone) as url:
        api = client(url)
        history = [{"role": "user", "content": "you in?"}, {"role": "assistant", "content": "where"},
                   {"role": "user", "content": [{"type": "text", "text": "the usual"}]}]
        done = api.chat.completions.create(model="sam", messages=history, extra_body={"bubbles": True})
        assert done.choices[0].message.bubbles == ["hey!", "yes i'm in", "see you at 8"]
        assert done.choices[0].message.bubbles == bubbles.split(done.choices[0].message.content)
        assert clone.backend.calls[-1][0][-1] == {"role": "user", "content": "the usual"}
        chunks = list(api.chat.completions.create(model="sam", messages=history, stream=True))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks).strip() == done.choices[0].message.content
        assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"


def test_requests_the_clone_cannot_answer_are_refused_with_the_reason():
    with serving(fake_clone(context=40)) as url:
        api = client(url)
        with pytest.raises(openai.BadRequestError, match="stop"):
            api.chat.completions.create(model="sam", messages=[{"role": "user", "content": "hi"}], stop=["\n"])
        with pytest.raises(openai.BadRequestError, match="end with a user message"):
            api.chat.completions.create(model="sam", messages=[{"role": "assistant", "content": "hi"}])
        too_long = [{"role": "user", "content": "word " * 100}]
        with pytest.raises(openai.BadRequestError, match="too long"):
            api.chat.completions.create(model="sam", messages=too_long)
        with pytest.raises(openai.APIError, match="too long"):
            list(api.chat.completions.create(model="sam", messages=too_long, stream=True))


def test_an_api_key_is_required_once_set():
    with serving(fake_clone(), api_key="s3cret") as url:
        hi = b'{"messages": [{"role": "user", "content": "hi"}]}'
        for path, data in (("/models", None), ("/chat/completions", hi)):
            request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(request, timeout=30)
            assert e.value.code == 401
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").models.list()
        assert client(url, "s3cret").chat.completions.create(model="sam", messages=[{"role": "user", "content": "hi"}])


def test_listening_beyond_this_machine_needs_an_api_key(project, monkeypatch):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        server.check_binding(host, None)
    server.check_binding("0.0.0.0", "s3cret")
    monkeypatch.delenv(server.API_KEY_ENV, raising=False)
    with pytest.raises(HiveError, match="--api-key KEY or the environment variable HIVE_API_KEY"):
        chat_script.main(["--serve", "--host", "0.0.0.0"])  # refused before looking for a model: there is none


def test_the_model_is_named_after_the_run_or_the_export():
    names = [server.model_name(chat.Clone(None, SimpleNamespace(max_new_tokens=8), 64, source=s)) for s in (
        "outputs/sam/final_model", "exports/sam/sam-q4_k_m.gguf", "exports/sam/merged_16bit", "models/merged")]
    assert names == ["sam", "sam-q4_k_m", "sam", "merged"]


# ---------------------------------------------------------------- slow: chat.py --serve against chat.py --prompt

PROMPT = "hey, are you free tonight?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chat_server(source, *flags: str):
    """`python chat.py SOURCE --serve` in a process of its own, until it answers; interrupted on the way out."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != server.API_KEY_ENV}
    command = [sys.executable, str(REPO / "chat.py"), str(source), "--serve", "--port", str(port), *flags]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "chat.py --serve did not answer in time"
            try:
                urllib.request.urlopen(url + "/models", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prompt_reply(source, capsys) -> list[str]:
    """The bubbles that `chat.py SOURCE --prompt PROMPT`, greedy, prints."""
    assert chat_script.main([str(source), "--prompt", PROMPT, "--temperature", "0", "--max-new-tokens", "40"]) == 0
    out = capsys.readouterr().out
    return [line.removeprefix("clone> ") for line in out.splitlines() if line.startswith("clone>")]


def assert_the_server_replies_as_chat_py(source, capsys):
    expected = prompt_reply(source, capsys)
    assert expected
    with chat_server(source) as (url, proc):
        api = client(url, timeout=600)  # a model on CPU, maybe a busy one
        asked = dict(model="x", temperature=0, max_tokens=40)
        done = api.chat.completions.create(messages=[{"role": "user", "content": PROMPT}], **asked,
                                           extra_body={"bubbles": True})
        message = done.choices[0].message
        assert message.bubbles == expected == bubbles.split(message.content)
        assert done.choices[0].finish_reason in ("stop", "length")
        pirate = [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": PROMPT}]
        assert api.chat.completions.create(messages=pirate, **asked).choices[0].message.content == message.content
        streamed = api.chat.completions.create(messages=[{"role": "user", "content": PROMPT}], stream=True, **asked)
        assert "".join(c.choices[0].delta.content or "" for c in streamed).strip() == message.content
        return done, proc


@pytest.mark.slow
def test_a_run_is_served_as_chat_py_answers(make_run, project, capsys):
    from transformers import AutoTokenizer

    run = make_run(project / "outputs" / "sam")
    done, _ = assert_the_server_replies_as_chat_py(run, capsys)
    tok = AutoTokenizer.from_pretrained(run / "final_model")
    persona = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    prompt = tok.apply_chat_template(persona, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert done.usage.prompt_tokens == len(prompt)
    assert done.model == "sam"


@pytest.mark.slow
@pytest.mark.llama_cpp
def test_a_gguf_export_is_served_as_chat_py_answers(smollm2_gguf, project, capsys):
    export = project / "exports" / "sam"
    export.mkdir(parents=True)
    (export / "sam-f16.gguf").symlink_to(smollm2_gguf)
    runs.ExportRecord(name="sam", run="sam", base_model="smollm2-135m", max_seq_length=512, system_prompt=SYSTEM,
                      gguf="sam-f16.gguf").save(export)
    done, proc = assert_the_server_replies_as_chat_py(export, capsys)
    assert done.model == "sam-f16"
    assert proc.wait(timeout=30) == 0
    assert "replies  3" in proc.stdout.read()
