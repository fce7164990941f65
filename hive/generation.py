"""How a reply is generated, the same way in chat.py, evaluate.py and export_model.py's check:

- prompt and reply share the model's context (max_seq_length). The reply may take generation.max_new_tokens, but
  never more than half the context (said once, when it is capped); the oldest turns of the conversation are dropped
  until the prompt leaves that room, and a single message too long for it still gets the room that is left, down to
  MIN_REPLY_TOKENS. Only a message that leaves less than that is refused.
- a reply stops at the tokenizer's EOS, the model's EOS ids and the chat template's end-of-turn marker;
- sampling follows the `generation` settings; temperature 0 means greedy.
"""

from collections.abc import Callable
from typing import Optional

from hive import conversations, templates
from hive.errors import HiveError

MIN_REPLY_TOKENS = 8


def reply_budget(max_seq_length: int, max_new_tokens: int) -> tuple[int, Optional[str]]:
    """(tokens a reply may take in this context, a notice when generation.max_new_tokens had to be capped)."""
    cap = max(max_seq_length // 2, 1)
    if max_new_tokens <= cap:
        return max_new_tokens, None
    return cap, (f"generation.max_new_tokens ({max_new_tokens}) would leave the prompt no room in a context of "
                 f"{max_seq_length} tokens; replies are capped at {cap} tokens")


def fit_prompt(messages: list[dict], prompt_tokens: Callable[[list[dict]], int], max_seq_length: int,
               reply_tokens: int) -> tuple[list[dict], int]:
    """(the newest turns of `messages` whose prompt leaves `reply_tokens` free, the reply's token budget).

    `messages` is the system message (if any) and the conversation ending with the message to reply to;
    `prompt_tokens` counts a rendered prompt."""
    fitted = conversations.fit(messages, prompt_tokens, max_seq_length - reply_tokens, keep=1)
    if fitted is not None:
        return fitted, reply_tokens
    alone = messages[:1] * (messages[0]["role"] == "system") + messages[-1:]
    n = prompt_tokens(alone)
    if max_seq_length - n >= MIN_REPLY_TOKENS:
        return alone, min(reply_tokens, max_seq_length - n)
    raise HiveError(f"the message is too long: with the persona its prompt is {n:,} tokens, which leaves no room for a "
                    f"reply in the model's context of {max_seq_length:,} tokens; send a shorter message (or pass "
                    f"--set model.max_seq_length=N with a larger N, up to what the model supports)")


def stop_ids(model, tokenizer) -> list[int]:
    """Token ids that end a reply: EOS (the tokenizer's and the model's) and a single-token end-of-turn marker."""
    eos = model.generation_config.eos_token_id
    ids = [tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])]
    eot = tokenizer(templates.end_of_turn(tokenizer), add_special_tokens=False)["input_ids"]
    if len(eot) == 1:
        ids.append(eot[0])
    return [i for i in dict.fromkeys(ids) if i is not None]


def generate_kwargs(model, tokenizer, gen, max_new_tokens: int) -> dict:
    """The keyword arguments of transformers' generate() for one reply under the `generation` settings."""
    kwargs: dict = {"max_new_tokens": max_new_tokens, "repetition_penalty": gen.repetition_penalty,
                    "eos_token_id": stop_ids(model, tokenizer)}
    kwargs["pad_token_id"] = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else kwargs["eos_token_id"][0]
    eot = templates.end_of_turn(tokenizer)
    if len(tokenizer(eot, add_special_tokens=False)["input_ids"]) > 1:
        # a ChatML template on a model without ChatML tokens: the marker is several tokens
        kwargs.update(stop_strings=[eot], tokenizer=tokenizer)
    if gen.temperature > 0:
        kwargs.update(do_sample=True, temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs
