"""The Ollama Modelfile of an export: a Go TEMPLATE equivalent to the chat template the model was trained with, its
stop tokens, the persona SYSTEM prompt and PARAMETERs from the generation settings.

The template is learnt, not guessed: the tokenizer's own (Jinja) chat template is rendered with sentinel contents,
and the text around the sentinels gives each role's prefix and suffix, the generation prompt and the default system
block that some templates (SmolLM2, Qwen) insert when a conversation has none. `render` executes the subset of Go
templates emitted here the way Ollama does, so tests and export verification can compare it with the original.
"""

import re
from dataclasses import dataclass

from hive.errors import HiveError

# Sentinels: plain words no template rewrites (no leading/trailing whitespace, which some templates strip).
_SYS, _USER, _ASSISTANT, _USER2 = "HIVESYSTEMSENTINEL", "HIVEUSERSENTINEL", "HIVEASSISTANTSENTINEL", "HIVEUSERTWO"


@dataclass(frozen=True)
class TemplateParts:
    """The literal text around each message of a chat template (all strings may be empty)."""

    system_prefix: str  # start of a conversation that has a system message, up to its content
    system_suffix: str
    no_system_prefix: str  # start of a conversation without one: may hold the template's default system block
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation_prompt: str  # what opens the reply the model writes


def _split(text: str, *sentinels: str) -> list[str]:
    """The pieces of `text` between the sentinels, which must all appear in order."""
    pieces, rest = [], text
    for s in sentinels:
        if s not in rest:
            raise HiveError(
                "could not derive an Ollama template: the model's chat template drops or rewrites message contents; "
                "use model.chat_template: chatml or llama3 when training"
            )
        head, rest = rest.split(s, 1)
        pieces.append(head)
    return [*pieces, rest]


def _strip_start(text: str, start: str, what: str) -> str:
    if not text.startswith(start):
        raise HiveError(f"could not derive an Ollama template: the chat template renders {what} inconsistently")
    return text[len(start):]


def _strip_end(text: str, end: str, what: str) -> str:
    if not text.endswith(end):
        raise HiveError(f"could not derive an Ollama template: the chat template renders {what} inconsistently")
    return text[: len(text) - len(end)]


def derive_parts(tokenizer) -> TemplateParts:
    """Learn the pieces of `tokenizer`'s chat template by rendering conversations with sentinel contents.

    A leading BOS text is dropped when the tokenizer adds BOS itself, because llama.cpp (and so Ollama) adds it too.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise HiveError("the exported tokenizer has no chat template; train.py saves the one it trained with")

    def render(messages, generation):
        roles = {"system": _SYS, "user": _USER, "assistant": _ASSISTANT, "user2": _USER2}
        msgs = [{"role": r.rstrip("2"), "content": roles[r]} for r in messages]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation)

    start, between_su, user_end_gen = _split(render(["system", "user"], True), _SYS, _USER)
    user_suffix = _split(render(["system", "user"], False), _SYS, _USER)[2]
    generation_prompt = _strip_start(user_end_gen, user_suffix, "the end of a user turn")
    between_ua, assistant_end = _split(render(["system", "user", "assistant"], False), _SYS, _USER, _ASSISTANT)[2:]
    between_au = _split(render(["system", "user", "assistant", "user2"], True), _SYS, _USER, _ASSISTANT, _USER2)[3]
    # A template may close the last assistant turn differently (e.g. no suffix); the middle turns are the rule.
    assistant_suffix = assistant_end if between_au.startswith(assistant_end) else ""
    user_prefix = _strip_start(between_au, assistant_suffix, "the end of an assistant turn")
    assistant_prefix = _strip_start(between_ua, user_suffix, "the end of a user turn")
    system_suffix = _strip_end(between_su, user_prefix, "the start of a user turn")
    no_system_start, _ = _split(render(["user"], True), _USER)
    no_system_prefix = _strip_end(no_system_start, user_prefix, "the start of a user turn")

    bos = getattr(tokenizer, "bos_token", None)
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    if bos and ids and ids[0] == tokenizer.bos_token_id:
        start = start.removeprefix(bos)
        no_system_prefix = no_system_prefix.removeprefix(bos)
    return TemplateParts(start, system_suffix, no_system_prefix, user_prefix, user_suffix,
                         assistant_prefix, assistant_suffix, generation_prompt)


def stop_tokens(parts: TemplateParts, tokenizer) -> list[str]:
    """Texts that end a reply: the end-of-turn marker, EOS, and special tokens that would open another turn."""
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", {}).values()
    special |= {t.content for t in added if getattr(t, "special", False)}
    stops = [parts.assistant_suffix.strip(), getattr(tokenizer, "eos_token", None) or ""]
    for text in (parts.user_prefix, parts.assistant_prefix):
        stops += sorted((t for t in special if t and t in text), key=text.index)
    return list(dict.fromkeys(s for s in stops if s))


def go_template(parts: TemplateParts) -> str:
    """The Ollama TEMPLATE. No `{{-`/`-}}` trimming: every newline in it belongs to the trained format.

    The system text comes from `.System` (Ollama collects the SYSTEM line and system messages into it); the loop
    renders only user and assistant turns, so a system message is never rendered twice.
    """
    for piece in vars(parts).values():
        if "{{" in piece or '"""' in piece:
            raise HiveError("the chat template contains '{{' or '\"\"\"', which an Ollama TEMPLATE cannot hold")
    return (
        f"{{{{ if .System }}}}{parts.system_prefix}{{{{ .System }}}}{parts.system_suffix}"
        f"{{{{ else }}}}{parts.no_system_prefix}{{{{ end }}}}"
        f"{{{{ range .Messages }}}}"
        f'{{{{ if eq .Role "user" }}}}{parts.user_prefix}{{{{ .Content }}}}{parts.user_suffix}'
        f'{{{{ else if eq .Role "assistant" }}}}{parts.assistant_prefix}{{{{ .Content }}}}{parts.assistant_suffix}'
        f"{{{{ end }}}}{{{{ end }}}}{parts.generation_prompt}"
    )


_TOKEN = re.compile(r"\{\{(.*?)\}\}", re.S)


def render(template: str, messages: list[dict], system: str | None = None) -> str:
    """Execute `template` as Ollama's chat endpoint would for `messages` (the subset of Go templates emitted above).

    Like Ollama, the Modelfile's SYSTEM applies when the conversation has no system message, and `.System` is every
    system message joined by blank lines.
    """
    systems = [m["content"] for m in messages if m["role"] == "system"] or ([system] if system else [])
    data = {"System": "\n\n".join(systems), "Messages": messages}
    tokens = _TOKEN.split(template)  # even indices: text; odd: actions
    out: list[str] = []
    end = _execute(tokens, 0, data, None, out)
    if end != len(tokens):
        raise ValueError(f"unexpected {{{{{tokens[end].strip()}}}}} in template")
    return "".join(out)


def _condition(action: str, data: dict, message: dict | None) -> bool:
    if action == "if .System":
        return bool(data["System"])
    m = re.fullmatch(r'if eq \.Role "(\w+)"', action)
    if m and message is not None:
        return message["role"] == m.group(1)
    raise ValueError(f"unsupported template action {{{{{action}}}}}")


def _execute(tokens: list[str], i: int, data: dict, message: dict | None, out: list[str] | None) -> int:
    """Render from tokens[i] into `out` (None: skip) until an else/end at this level; return that token's index."""
    while i < len(tokens):
        if i % 2 == 0:
            if out is not None:
                out.append(tokens[i])
            i += 1
            continue
        action = tokens[i].strip()
        if action in ("end", "else") or action.startswith("else if "):
            return i
        if action == ".System":
            if out is not None:
                out.append(data["System"])
        elif action == ".Content":
            if out is not None:
                out.append(message["content"])
        elif action == "range .Messages":
            body = i + 1
            for m in data["Messages"] if out is not None else []:
                _execute(tokens, body, data, m, out)
            i = _execute(tokens, body, data, message, None)
            assert tokens[i].strip() == "end", "range without end"
        elif action.startswith("if "):
            taken = False
            while True:
                take = not taken and out is not None and (action == "else" or _condition(action, data, message))
                i = _execute(tokens, i + 1, data, message, out if take else None)
                taken = taken or take
                action = tokens[i].strip()
                if action == "end":
                    break
                action = action.removeprefix("else ") if action.startswith("else if ") else action
        else:
            raise ValueError(f"unsupported template action {{{{{action}}}}}")
        i += 1
    return i


def _quote(text: str) -> str:
    if '"""' in text:
        raise HiveError('the system prompt contains """, which a Modelfile cannot hold; remove it from '
                        'convert.system_prompt')
    return f'"""{text}"""'


def modelfile_text(source_lines: list[str], template: str, stops: list[str], system: str | None, gen,
                   num_ctx: int) -> str:
    """The Modelfile: FROM/ADAPTER lines, TEMPLATE, SYSTEM (the persona, when one was trained) and PARAMETERs.

    `gen` is the generation config section; Ollama's option names differ (repeat_penalty, num_predict).
    """
    lines = [*source_lines, f"TEMPLATE {_quote(template)}"]
    if system:
        lines.append(f"SYSTEM {_quote(system)}")
    params = {
        "temperature": gen.temperature, "top_p": gen.top_p, "top_k": gen.top_k,
        "repeat_penalty": gen.repetition_penalty, "num_predict": gen.max_new_tokens, "num_ctx": num_ctx,
    }
    lines += [f"PARAMETER {k} {v}" for k, v in params.items()]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"
