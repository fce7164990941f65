"""What a training conversation is, in one place: a {"messages": [{"role", "content"}, ...]} sample whose roles are
system (first only), user and assistant, with a user turn before the assistant reply it ends with.

- `problems` lists everything that keeps an object from being a sample (validate_dataset.py reports them,
  clean_incomplete.py drops the INCOMPLETE ones, train.py and evaluate.py refuse a file that has any);
- `read` reads a sample file for training and evaluation;
- `fit` trims a conversation to a token budget: the system message stays, the oldest turns go first, and the
  conversation always starts with a user turn (some chat templates insist on user/assistant alternation). convert.py
  builds samples, train.py and evaluate.py encode them, and chat.py fits a live conversation with this one rule.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Optional

from hive.errors import HiveError, missing_input

ROLES = ("system", "user", "assistant")
# The problems that leave nothing to learn from; a wrong role name or turn order may still be repaired.
INCOMPLETE = ("no turns", "empty turn", "no user turn", "no assistant turn", "schema")


def problems(obj) -> list[tuple[str, str]]:
    """(kind, detail) for everything that keeps `obj` from being a training sample; [] for a good one."""
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        return [("schema", "not an object with a `messages` list")]
    messages = obj["messages"]
    if not messages:
        return [("no turns", "`messages` is empty")]
    found, roles = [], []
    for i, m in enumerate(messages, 1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            found.append(("schema", f"message {i} needs a string `role` and a string `content`"))
            continue
        roles.append(m["role"])
        if m["role"] not in ROLES:
            found.append(("role", f"message {i} has role {m['role']!r}; allowed: {', '.join(ROLES)}"))
        elif not m["content"].strip():
            found.append(("empty turn", f"message {i} ({m['role']}) is empty"))
    if found:  # the turn order of messages that are themselves broken says nothing more
        return found
    if "user" not in roles:
        found.append(("no user turn", "no message has the role user"))
    if "assistant" not in roles:
        found.append(("no assistant turn", "no message has the role assistant"))
    elif roles[-1] != "assistant":
        found.append(("order", f"the last turn is {roles[-1]}, not assistant"))
    if "system" in roles[1:]:
        found.append(("order", "a system message after the first position"))
    return found


def incomplete_reason(obj) -> Optional[str]:
    """The first problem that leaves nothing to learn from, or None."""
    return next((kind for kind, _ in problems(obj) if kind in INCOMPLETE), None)


def read(path: Path, limit: Optional[int] = None) -> list[list[dict]]:
    """The `messages` of every sample in a JSONL file (at most `limit`); the first bad line stops with its number."""
    import json

    if not path.is_file():
        raise missing_input(path, "convert.py", "sample file")
    samples = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                obj, found = None, [("invalid JSON", f"{e.msg} at column {e.colno}")]
            else:
                found = problems(obj)
            if found:
                kind, detail = found[0]
                raise HiveError(f"{path}:{number}: {kind}: {detail}; check the file with "
                                f"`python validate_dataset.py --input {path}` (fix_dataset.py and clean_incomplete.py "
                                f"repair most problems)")
            samples.append(obj["messages"])
            if limit is not None and len(samples) >= limit:
                break
    if not samples:
        raise HiveError(f"{path} holds no samples; re-run convert.py (are your names in extract.me right?)")
    return samples


def _parts(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(system message or [], the turns from the first user turn on)."""
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(system):]
    while turns and turns[0]["role"] != "user":
        turns = turns[1:]
    return system, turns


def drop_oldest(messages: list[dict], keep: int) -> Optional[list[dict]]:
    """`messages` without its oldest turn (and any turn that would then open the conversation without being a user
    turn); None when fewer than `keep` turns would be left. A leading system message always stays."""
    system, turns = _parts(messages)
    system, rest = _parts(system + turns[1:])
    return system + rest if len(rest) >= keep else None


def fit(messages: list[dict], length: Callable[[list[dict]], int], budget: int, keep: int) -> Optional[list[dict]]:
    """The longest tail of `messages` (oldest turns dropped first) whose `length` is within `budget`; at least `keep`
    turns besides the system message stay (2 for a training sample: the last user turn and the reply; 1 for a
    prompt), else None. A conversation that starts with a non-user turn is trimmed to start with a user turn."""
    system, turns = _parts(messages)
    if len(turns) < keep:
        return None
    current: Optional[list[dict]] = system + turns
    while current is not None and length(current) > budget:
        current = drop_oldest(current, keep)
    return current
