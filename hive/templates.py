"""Chat templates: which one a model is trained with, and how a sample is split into prompt and reply.

`model.chat_template: auto` keeps the model's own template (the right one for an instruct model) and falls back to
ChatML for models that ship none. The template used for training is set on the tokenizer, and the tokenizer is saved
with the adapter (final_model/chat_template.jinja), so evaluate.py, chat.py and export_model.py format prompts
exactly as the model saw them in training.
"""

from hive.errors import HiveError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Llama-3's header/turn tokens, without the date and tool preamble of Meta's own template.
LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3}
_PROBE = "\u2063HIVE-REPLY\u2063"  # invisible separators: never produced by a real template around a reply


def apply(tokenizer, choice: str) -> str:
    """Set the training template on `tokenizer` and return what was chosen ("own", "chatml" or "llama3")."""
    if choice == "auto":
        if tokenizer.chat_template:
            return "own"
        choice = "chatml"
    if choice not in TEMPLATES:
        raise HiveError(f"model.chat_template {choice!r} is unknown; use auto, {' or '.join(TEMPLATES)}")
    tokenizer.chat_template = TEMPLATES[choice]
    return choice


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def end_of_turn(tokenizer) -> str:
    """The text the template closes an assistant turn with (`<|im_end|>`, `<|eot_id|>`, ...): the model must learn to
    produce it, and a chat client stops generating at it."""
    text = render(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}])
    tail = text[text.rindex(_PROBE) + len(_PROBE):].strip()
    return tail or tokenizer.eos_token


def split(tokenizer, messages: list[dict], eot: str | None = None) -> tuple[str, str]:
    """(prompt, completion) text of a sample: the prompt is everything up to the header of the last (assistant)
    turn, the completion is that reply plus the end-of-turn marker. Both are exactly what the template renders.
    `eot` is end_of_turn(tokenizer), passed in when splitting many samples."""
    prompt = render(tokenizer, messages[:-1], add_generation_prompt=True)
    full = render(tokenizer, messages)
    if not full.startswith(prompt):
        raise HiveError(
            "the chat template renders a conversation differently from its prompt (it is not prefix-consistent), so "
            "the reply cannot be told apart; set model.chat_template to chatml or llama3"
        )
    completion = full[len(prompt):]
    eot = eot or end_of_turn(tokenizer)
    cut = completion.rfind(eot)
    return prompt, completion if cut < 0 else completion[: cut + len(eot)]
