"""Counting the tokens of a chat sample as the trainer will see it: rendered with the model's chat template and
tokenized, or, when no tokenizer can be loaded, with a documented estimate.

The estimate is ceil(UTF-8 bytes / 3) per message plus ESTIMATE_TURN_OVERHEAD tokens per message and
ESTIMATE_FIXED_OVERHEAD per sample. Bytes rather than characters so emoji and non-Latin scripts (2-4 bytes, often
a token or more each) are not undercounted; English runs at ~4 characters per token, so it errs on the long side.
"""

import math
from collections.abc import Sequence

from tqdm import tqdm

from hive.errors import HiveError

ESTIMATE_BYTES_PER_TOKEN = 3
ESTIMATE_TURN_OVERHEAD = 8  # role header + end-of-turn markers: ChatML and Llama 3 use 5-6 tokens
ESTIMATE_FIXED_OVERHEAD = 48  # BOS plus a default system block (SmolLM2 inserts ~20 tokens, Llama 3 ~25)
ESTIMATE = "estimate"
BATCH = 1024

Conversation = Sequence[dict]


class TokenCounter:
    """Token counts of texts and of whole conversations; `name` says which method is in use."""

    def __init__(self, tokenizer=None, name: str = ESTIMATE):
        self.tokenizer = tokenizer
        self.name = name if tokenizer is not None else (
            f"estimate (ceil(UTF-8 bytes/{ESTIMATE_BYTES_PER_TOKEN}) + {ESTIMATE_TURN_OVERHEAD}/turn "
            f"+ {ESTIMATE_FIXED_OVERHEAD}/sample)"
        )

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def count_texts(self, texts: Sequence[str]) -> list[int]:
        if self.tokenizer is None:
            return [math.ceil(len(t.encode("utf-8")) / ESTIMATE_BYTES_PER_TOKEN) for t in texts]
        counts: list[int] = []
        for start in range(0, len(texts), BATCH):
            ids = self.tokenizer(list(texts[start:start + BATCH]), add_special_tokens=False)["input_ids"]
            counts.extend(len(x) for x in ids)
        return counts

    def count_conversations(self, conversations: Sequence[Conversation], desc: str | None = None) -> list[int]:
        """Tokens of each conversation rendered with the chat template (its special tokens and headers included);
        `desc` shows a progress bar."""
        if self.tokenizer is None:
            return [
                ESTIMATE_FIXED_OVERHEAD
                + sum(ESTIMATE_TURN_OVERHEAD + n for n in self.count_texts([m["content"] for m in c]))
                for c in conversations
            ]
        counts: list[int] = []
        for start in tqdm(range(0, len(conversations), BATCH), desc=desc, unit="batch", disable=None if desc else True,
                          leave=False):
            batch = [list(c) for c in conversations[start:start + BATCH]]
            texts = self.tokenizer.apply_chat_template(batch, tokenize=False)
            counts.extend(self.count_texts(texts))
        return counts

    def overheads(self, system: str | None) -> tuple[int, int]:
        """(fixed, per_turn): a conversation costs about fixed + sum(content tokens + per_turn) over its non-system
        turns; `fixed` includes the system turn. Measured on two probe conversations, so it is an estimate that
        callers confirm with count_conversations."""
        if self.tokenizer is None:
            sys_cost = ESTIMATE_TURN_OVERHEAD + self.count_texts([system])[0] if system else 0
            return ESTIMATE_FIXED_OVERHEAD + sys_cost, ESTIMATE_TURN_OVERHEAD
        head = [{"role": "system", "content": system}] if system else []
        pair = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "x"}]
        one, two = self.count_conversations([head + pair, head + pair + pair])
        x = self.count_texts(["x"])[0]
        per_turn = max(0, (two - one) // 2 - x)
        return max(0, one - 2 * (x + per_turn)), per_turn


def load_counter(name: str | None, fallback_model: str, chat_template: str = "auto") -> TokenCounter:
    """The tokenizer `name` (an error when it cannot be loaded), or else the one of `fallback_model`, or else the
    estimate; `name` "estimate" asks for the estimate. The tokenizer gets the chat template that training will use
    (model.chat_template), so the counts include exactly the overhead the trainer sees."""
    from hive import templates
    from hive.models import load_tokenizer

    if name == ESTIMATE:
        return TokenCounter()
    try:
        tokenizer = load_tokenizer(name or fallback_model)
        chosen = templates.apply(tokenizer, chat_template)
        return TokenCounter(tokenizer, f"tokenizer of {name or fallback_model!r}, {chosen} chat template")
    except (HiveError, OSError, ValueError) as e:
        if name:
            raise HiveError(f"could not load tokenizer {name!r}: {e}") from None
        print(f"note: tokenizer of {fallback_model!r} not available ({str(e).splitlines()[0][:160]}); "
              f"using the token estimate (pass --tokenizer NAME to count exactly)", flush=True)
        return TokenCounter()
