"""`chat.py --serve`: the clone behind an OpenAI-compatible HTTP API (/v1/chat/completions, streamed or not, and
/v1/models), so any app that speaks the OpenAI API can talk to it.

The HTTP side is llama-cpp-python's server (llama_cpp.server: its FastAPI routes, the OpenAI request schema, SSE
streaming, the bearer API-key check). Every reply comes from the hive.chat.Clone that chat.py talks to, plugged in
where that server calls a model's chat handler, for a GGUF (llama.cpp) and for a run or merged folder
(transformers) alike: the persona, chat template, stop tokens, history trimming and generation settings are chat.py's
by construction. Why this server and not `transformers serve`: docs/serving.md.

A request's own temperature, top_p, top_k, repeat_penalty and max_tokens (or max_completion_tokens) apply; what it
leaves out comes from the `generation` config. The persona replaces any system message the request sends.
Hive's one extension: `"bubbles": true` adds `bubbles`, the reply as WhatsApp messages (hive.bubbles), to the
message of each choice of a non-streamed reply.
"""

import contextlib
import dataclasses
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from hive import bubbles
from hive.errors import HiveError

API_KEY_ENV = "HIVE_API_KEY"
SAMPLING = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "repeat_penalty": "repetition_penalty",
            "max_tokens": "max_new_tokens"}  # request field -> generation config key
UNSUPPORTED = ("stop", "tools", "functions", "response_format", "grammar", "logit_bias", "logprobs")


def check_binding(host: str, api_key: str | None) -> None:
    """Only loopback without an API key: anywhere else, anyone on the network could talk to the clone."""
    if host == "localhost" or _is_loopback(host) or api_key:
        return
    raise HiveError(f"--host {host} makes the clone reachable from other machines; give it an API key: --api-key KEY "
                    f"or the environment variable {API_KEY_ENV} (clients send it as the OpenAI API key)")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def model_name(clone) -> str:
    """What /v1/models calls the clone: the run, export or GGUF name."""
    path = Path(clone.source)
    if path.name in ("final_model", "lora", "merged_16bit", "merged_4bit"):
        path = path.parent
    return path.stem if path.suffix == ".gguf" else path.name


class _Model:
    """What llama_cpp.server's routes take for their `Llama`: they call Llama.create_chat_completion, which hands the
    request to `chat_handler`; here that is the clone."""

    _chat_handlers: dict = {}
    chat_format = None

    def __init__(self, clone, name: str):
        self.clone, self.name, self.replies = clone, name, 0

    def create_chat_completion(self, **request):
        return self.chat_handler(llama=self, **request)

    def chat_handler(self, llama, messages: list[dict], stream: bool = False, **request):
        try:
            sent = [key for key in UNSUPPORTED if request.get(key)]
            if sent:
                raise HiveError(f"not supported by Hive's server: {', '.join(sent)}")
            history = _history(messages)
        except HiveError as e:
            return _refusal(str(e)) if not stream else iter([_error(str(e))])
        settings = {key: request[field] for field, key in SAMPLING.items() if request.get(field) is not None}
        gen = dataclasses.replace(self.clone.gen, **settings)
        if stream:
            return self._chunks(history, gen)
        try:
            with self._generation(gen):
                text = self.clone.reply(history)
        except HiveError as e:
            return _refusal(str(e))
        reply, self.replies = self.clone.last, self.replies + 1
        message = {"role": "assistant", "content": text}
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.tokens,
                 "total_tokens": reply.prompt_tokens + reply.tokens}
        return {**self._head("chat.completion"), "usage": usage,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}]}

    def _chunks(self, history: list[dict], gen) -> Iterator[dict]:
        head = self._head("chat.completion.chunk")

        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

        try:
            with self._generation(gen):
                yield chunk({"role": "assistant", "content": ""})
                for piece in self.clone.stream(history):
                    yield chunk({"content": piece})
                yield chunk({}, self.clone.last.finish_reason)
            self.replies += 1
        except HiveError as e:  # the response has started: OpenAI clients read an error event in a stream
            yield _error(str(e))

    @contextlib.contextmanager
    def _generation(self, gen):
        """The clone with this request's generation settings (llama_cpp.server runs one request at a time)."""
        saved, self.clone.gen = self.clone.gen, gen
        try:
            yield
        finally:
            self.clone.gen = saved

    def _head(self, kind: str) -> dict:
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": self.name}


def _error(message: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def _refusal(message: str):
    """A 400 answer in OpenAI's error shape; llama_cpp.server's route passes a response through as it is."""
    from fastapi.responses import JSONResponse

    return JSONResponse(_error(message), status_code=400)


def _history(messages: list[dict]) -> list[dict]:
    """The request's conversation as Clone takes it: user and assistant turns with text content; system messages
    give way to the clone's persona."""
    history = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise HiveError(f"messages: role {role!r} is not supported (user, assistant, system)")
        if isinstance(content, list):  # content parts: only text can reach a text model
            content = "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
        history.append({"role": role, "content": content or ""})
    if not history or history[-1]["role"] != "user":
        raise HiveError("messages: the conversation must end with a user message for the clone to answer")
    return history


class _Requests:
    """ASGI middleware for /v1/chat/completions: fills the sampling fields a request leaves out with the clone's
    generation settings (llama_cpp.server's request schema would put in its own defaults) and, for `"bubbles": true`,
    adds the bubbles to a non-streamed response."""

    def __init__(self, app, defaults: dict):
        self.app, self.defaults = app, defaults

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/chat/completions":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        try:
            request = json.loads(body)
        except ValueError:
            request = None  # the route answers it with its own error
        want_bubbles = False
        if isinstance(request, dict):
            want_bubbles = bool(request.pop("bubbles", False))
            if request.get("max_tokens") is None and request.get("max_completion_tokens") is not None:
                request["max_tokens"] = request["max_completion_tokens"]
            request.update({k: v for k, v in self.defaults.items() if request.get(k) is None})
            body = json.dumps(request).encode()
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]
                 + [(b"content-length", str(len(body)).encode())]}
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # what comes next: the disconnect the server watches for while streaming
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, _with_bubbles(send) if want_bubbles else send)


def _with_bubbles(send):
    """`send` for a response that gets the bubbles added, when it is JSON (a non-streamed reply)."""
    start, chunks = None, []

    async def wrapped(message):
        nonlocal start
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if not content_type.startswith(b"application/json") or message["status"] != 200:
                return await send(message)
            start = message
            return None
        if start is None or message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return None
        response = json.loads(b"".join(chunks))
        for choice in response.get("choices", []):
            choice["message"]["bubbles"] = bubbles.split(choice["message"].get("content") or "")
        body = json.dumps(response).encode()
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped


def create_app(clone, api_key: str | None, name: str | None = None):
    """The FastAPI app: llama_cpp.server's routes answering with `clone`; an API key, when given, is required (401).
    One app per process: llama_cpp.server keeps its settings and model in module globals."""
    import llama_cpp.server.app as llama_server
    from fastapi import FastAPI
    from llama_cpp.server.settings import ServerSettings

    llama_server.set_server_settings(ServerSettings(api_key=api_key))
    # The routes take their model from this module-level proxy; its own class would load a GGUF from settings, so
    # the proxy is set directly to one that holds the already loaded clone (any model name a client asks for).
    model = _Model(clone, name or model_name(clone))
    llama_server._llama_proxy = _Proxy(model)
    app = FastAPI(title=f"Hive: {model.name}")
    app.state.model = model
    app.include_router(llama_server.router)
    defaults = {field: getattr(clone.gen, key) for field, key in SAMPLING.items()}
    app.add_middleware(_Requests, defaults=defaults)
    return app


class _Proxy:
    """llama_cpp.server's LlamaProxy interface for one model: any requested name gets it, /v1/models lists it."""

    def __init__(self, model: _Model):
        self.model = model

    def __call__(self, name: str | None = None) -> _Model:
        return self.model

    def __iter__(self):
        yield self.model.name


def serve(clone, host: str, port: int, api_key: str | None) -> int:
    """Answer requests until Ctrl-C; returns the number of replies."""
    import uvicorn

    app = create_app(clone, api_key)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl-C is how the server stops: uvicorn shuts down, then raises it again
        pass
    except SystemExit:  # uvicorn exits when it cannot listen, after logging why
        raise HiveError(f"cannot listen on {host}:{port} (see the line above); pass another --port") from None
    return app.state.model.replies
