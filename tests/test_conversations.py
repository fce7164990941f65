"""The one definition of a training sample (hive/conversations.py): what is a problem, what is incomplete, how a
file is read, and how a conversation is trimmed to a token budget. Every stage uses these rules, so they are pinned
here once."""

import json

import pytest

from hive import conversations
from hive.errors import HiveError

U, A, S = "user", "assistant", "system"


def turns(*roles_and_texts):
    return [{"role": r, "content": c} for r, c in roles_and_texts]


@pytest.mark.parametrize("messages, kinds", [
    (turns((U, "a"), (A, "b")), []),
    (turns((S, "p"), (U, "a"), (A, "b"), (U, "c"), (A, "d")), []),
    ([], ["no turns"]),
    (turns((U, "a"), (A, " ")), ["empty turn"]),
    (turns((U, "a"), ("bot", "b")), ["role"]),
    (turns((U, "a"), (S, "s"), (A, "b")), ["order"]),
    (turns((A, "b")), ["no user turn"]),
    (turns((U, "a")), ["no assistant turn"]),
    (turns((U, "a"), (A, "b"), (U, "c")), ["order"]),
    ([{"role": "user", "content": 3}, {"role": "assistant", "content": "b"}], ["schema"]),
])
def test_problems(messages, kinds):
    assert [k for k, _ in conversations.problems({"messages": messages})] == kinds


def test_not_a_sample_at_all():
    for obj in (None, [], "text", {"conversations": []}, {"messages": "hi"}):
        assert conversations.problems(obj) == [("schema", "not an object with a `messages` list")]


@pytest.mark.parametrize("messages, reason", [
    (turns((U, "a"), (A, "b")), None),
    (turns((U, "a")), "no assistant turn"),
    (turns((A, "b")), "no user turn"),
    (turns((U, " "), (A, "b")), "empty turn"),
    ([], "no turns"),
    (turns((U, "a"), (A, "b"), (U, "c")), None),  # complete: the turn order is validate's business, not clean's
    (turns(("human", "a"), ("gpt", "b")), None),  # fix_dataset.py renames these roles
])
def test_incomplete_reason(messages, reason):
    assert conversations.incomplete_reason({"messages": messages}) == reason


def test_read_refuses_the_first_bad_line_with_its_number(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps({"messages": turns((U, "a"), (A, "b"))})
    path.write_text(f"{good}\n\n{good}\n" + json.dumps({"messages": turns((U, "a"))}) + "\n")
    with pytest.raises(HiveError, match=r"d.jsonl:4: no assistant turn.*validate_dataset.py"):
        conversations.read(path)
    assert conversations.read(path, limit=2) == [turns((U, "a"), (A, "b"))] * 2
    with pytest.raises(HiveError, match="not found.*convert.py"):
        conversations.read(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(HiveError, match="holds no samples"):
        conversations.read(tmp_path / "empty.jsonl")


def test_drop_oldest_keeps_the_system_message_and_starts_with_a_user_turn():
    conv = turns((S, "p"), (U, "1"), (A, "2"), (U, "3"), (A, "4"))
    assert conversations.drop_oldest(conv, keep=2) == turns((S, "p"), (U, "3"), (A, "4"))
    assert conversations.drop_oldest(turns((S, "p"), (U, "3"), (A, "4")), keep=2) is None
    assert conversations.drop_oldest(turns((U, "1"), (U, "2")), keep=1) == turns((U, "2"))


def test_fit_drops_oldest_turns_until_the_budget_holds():
    conv = turns((S, "p"), (A, "0"), (U, "1"), (A, "2"), (U, "3"))
    length = len  # one token per message
    assert conversations.fit(conv, length, 99, keep=1) == turns((S, "p"), (U, "1"), (A, "2"), (U, "3"))
    assert conversations.fit(conv, length, 3, keep=1) == turns((S, "p"), (U, "3"))
    assert conversations.fit(conv, length, 1, keep=1) is None
    assert conversations.fit(turns((A, "only me")), length, 99, keep=1) is None
    sample = turns((U, "1"), (A, "2"), (U, "3"), (A, "4"))
    assert conversations.fit(sample, length, 2, keep=2) == turns((U, "3"), (A, "4"))
    assert conversations.fit(sample, length, 1, keep=2) is None
