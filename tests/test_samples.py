"""hive.samples: the exact samples of both modes on hand-written chats (tests/fixtures/cleaned), drops by reason,
fitting to model.max_seq_length, the session split, determinism."""

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hive.config import load_config
from hive.errors import HiveError
from hive.samples import Chat, Message, build, load_chats, owner_name
from hive.tokens import TokenCounter
from tests.conftest import FIXTURES

U, A, S = "user", "assistant", "system"


def conv(*turns):
    return [{"role": role, "content": content} for role, content in turns]


TWO_PERSON = [
    conv((U, "hey, are you up?\nneed a favour"), (A, "yeah what's up\ntell me")),
    conv((U, "hey, are you up?\nneed a favour"), (A, "yeah what's up\ntell me"), (U, "<media>\ncan you feed the cat?"),
         (A, "sure, what time?")),
    # my deleted message stays in context as a placeholder; "?" came 29 minutes later, so it is a turn of its own
    conv((U, "hey, are you up?\nneed a favour"), (A, "yeah what's up\ntell me"), (U, "<media>\ncan you feed the cat?"),
         (A, "<deleted>\nsure, what time?"), (A, "?")),
    # two days later: "cat fed" opens the session (no context, dropped), the phone-number notice is left out
    conv((U, "thanks!!"), (A, "anytime")),
    # the session of 03-05 repeats the sample above (dropped as a duplicate) and goes on
    conv((U, "thanks!!"), (A, "anytime"), (U, "look"), (A, "<URL> lol")),
]
GROUP = [
    conv((U, "Priya: who's in for hiking sunday?\nOmar: me!\nwhat time\nPriya: <view once>"), (A, "count me in")),
    conv((U, "Priya: who's in for hiking sunday?\nOmar: me!\nwhat time\nPriya: <view once>"), (A, "count me in"),
         (U, "Priya: great"), (U, "Priya: 8am at the station"), (A, "ugh early\nfine")),
]


def run(mode="reply", counter=None, max_seq_length=2048, **convert):
    overrides = {"convert.mode": mode, "convert.validation_fraction": 0.0, "model.max_seq_length": max_seq_length}
    cfg = load_config(None, {**overrides, **{f"convert.{k}": v for k, v in convert.items()}})
    return build(load_chats(FIXTURES / "cleaned"), cfg, counter or TokenCounter())


def messages(result):
    return [s["messages"] for s in result.train + result.validation]


def test_reply_mode_exact_samples_and_drops():
    result = run()
    assert messages(result) == TWO_PERSON + GROUP
    assert result.drops == Counter(no_context=1, reply_non_text=1, duplicate=1)
    assert result.info["owner"] == "Sam"
    assert (result.info["chats"], result.info["group chats"], result.info["sessions"]) == (2, 1, 4)


def test_reply_mode_drops_non_text_context_when_asked():
    samples = messages(run(non_text_context="drop"))
    assert samples[2] == conv((U, "hey, are you up?\nneed a favour"), (A, "yeah what's up\ntell me"),
                              (U, "can you feed the cat?"), (A, "sure, what time?"), (A, "?"))
    assert samples[5] == conv((U, "Priya: who's in for hiking sunday?\nOmar: me!\nwhat time"), (A, "count me in"))
    assert not any("<" in m["content"] for s in samples for m in s if "URL" not in m["content"])


def test_reply_length_limits_and_no_dedupe():
    result = run(min_reply_chars=2, max_reply_chars=10, dedupe=False)
    replies = [s[-1]["content"] for s in messages(result)]
    assert "?" not in replies and "yeah what's up\ntell me" not in replies and replies.count("anytime") == 2
    assert result.drops["reply_too_short"] == 1 and result.drops["reply_too_long"] == 4


def test_merge_and_session_gaps_and_context_limit():
    merged = messages(run(merge_gap_minutes=30.0, max_context_turns=1))
    assert merged[1] == conv((U, "<media>\ncan you feed the cat?"), (A, "sure, what time?\n?"))
    # one long session: the 03-03 opener now answers the 03-01 "6pm"
    one_session = messages(run(session_gap_hours=100.0))
    assert conv((U, "6pm"), (A, "<media> this one?"), (A, "cat fed 🐱"))[1:] == one_session[3][-2:]


def test_sliding_mode_is_the_original_pairing():
    result = run("sliding")
    assert messages(result) == [
        conv((U, "yeah what's up"), (A, "tell me")), conv((U, "tell me"), (A, "sure, what time?")),
        conv((U, "sure, what time?"), (A, "?")), conv((U, "?"), (A, "cat fed 🐱")),
        conv((U, "cat fed 🐱"), (A, "anytime")),
        conv((U, "anytime"), (A, "anytime")), conv((U, "anytime"), (A, "lol")),
        conv((U, "count me in"), (A, "ugh early")), conv((U, "ugh early"), (A, "fine")),
    ]
    assert result.info["my messages filtered: not text"] == 2


def test_sliding_applies_the_original_text_filters():
    t = datetime(2024, 1, 1)
    texts = ["first", "https://example.com/x", "I deleted this message lol", "see www.example.com now", "<URL>", "last"]
    chat = Chat("c", [Message(t + timedelta(minutes=i), "Me", True, "text", x) for i, x in enumerate(texts)])
    cfg = load_config(None, {"convert.mode": "sliding", "convert.validation_fraction": 0.0})
    result = build([chat], cfg, TokenCounter())
    assert messages(result) == [conv((U, "first"), (A, "see  now")), conv((U, "see  now"), (A, "last"))]


def test_system_prompt_names_the_owner():
    samples = messages(run(system_prompt="You are {me}. Text like {me}."))
    assert all(s[0] == {"role": S, "content": "You are Sam. Text like Sam."} for s in samples)


def test_owner_is_the_most_frequent_of_my_names():
    t = datetime(2024, 1, 1)
    chat = Chat("c", [Message(t, n, True, "text", "x") for n in ["Sam K", "Sam", "Sam K", "Sam", "Bo"]])
    assert owner_name([chat]) == "Sam"  # a tie goes to the alphabetically first name
    assert owner_name([Chat("c", [Message(t, "Bo", False, "text", "x")])]) is None


def test_every_sample_fits_and_oldest_context_goes_first():
    counter = TokenCounter()
    full = messages(run())
    limit = counter.count_conversations([full[2]])[0] - 1
    fitted = messages(run(max_seq_length=limit))
    assert all(n <= limit for n in counter.count_conversations(fitted))
    assert fitted[2] == full[2][2:]  # the oldest user turn and my answer to it went; the reply is whole
    result = run(max_seq_length=50)  # the estimate's fixed 48 + 8 per turn leave no room for any reply
    assert result.drops["reply_over_max_seq_length"] == 9 and not messages(result)  # the opener too
    result = run(max_seq_length=70)
    assert result.drops["context_over_max_seq_length"] > 0
    assert all(n <= 70 for n in counter.count_conversations(messages(result)))


class NewlineHeavyTokenizer:
    """A whitespace tokenizer whose template spends an extra token per newline: the per-turn sums underestimate
    it, so convert must confirm each sample with a full render."""

    chat_template = "fake"

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [t.split() for t in texts]}

    def apply_chat_template(self, conversations, tokenize=False):
        return [" ".join(f"<{m['role']}> {m['content'].replace(chr(10), ' <nl> ')} <end>" for m in c)
                for c in conversations]


def test_exact_counts_confirm_every_sample():
    counter = TokenCounter(NewlineHeavyTokenizer(), "fake")
    assert counter.overheads(None) == (0, 2)
    result = run(counter=counter, max_seq_length=16)
    assert all(n <= 16 for n in counter.count_conversations(messages(result)))
    # the per-turn sums put the first sample at 15 tokens; rendered it is 17, so its only user turn had to go
    assert TWO_PERSON[0] not in messages(result) and result.drops["context_over_max_seq_length"] >= 1


def session_chat(sessions: int) -> Chat:
    t, rows = datetime(2024, 1, 1), []
    for s in range(sessions):
        for i in range(4):
            rows.append(Message(t + timedelta(days=s, minutes=i), "Me" if i % 2 else "Bo", i % 2 == 1, "text",
                                f"s{s} m{i}"))
    return Chat("many", rows)


def test_split_by_session_never_overlaps_and_is_seeded():
    cfg = load_config(None, {"convert.validation_fraction": 0.3})
    result = build([session_chat(20)], cfg, TokenCounter())
    session_of = lambda sample: {m["content"].split()[0] for m in sample["messages"]}  # noqa: E731
    train = set().union(*map(session_of, result.train))
    held = set().union(*map(session_of, result.validation))
    assert len(held) == 6 and not train & held and len(train) == 14
    again = build([session_chat(20)], cfg, TokenCounter())
    assert again.validation == result.validation
    other_cfg = load_config(None, {"convert.validation_fraction": 0.3, "convert.seed": 7})
    other = build([session_chat(20)], other_cfg, TokenCounter())
    assert other.validation != result.validation


def test_sliding_splits_by_chat():
    cfg = load_config(None, {"convert.mode": "sliding", "convert.validation_fraction": 0.5})
    result = build(load_chats(FIXTURES / "cleaned"), cfg, TokenCounter())
    contents = lambda rows: {m["content"] for s in rows for m in s["messages"]}  # noqa: E731
    assert result.validation and result.train and not contents(result.train) & contents(result.validation)


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(HiveError, match="extract.py"):
        load_chats(tmp_path / "nowhere")
    (tmp_path / "a.jsonl").write_text('{"chat": "a", "timestamp": "2024-01-01T10:00"}\n')
    with pytest.raises(HiveError, match=r"a.jsonl:1: not a cleaned message \(missing \['sender'"):
        load_chats(tmp_path)
    (tmp_path / "a.jsonl").write_text("")
    with pytest.raises(HiveError, match="no messages"):
        load_chats(tmp_path)
    with pytest.raises(HiveError, match="validation_fraction"):
        run(validation_fraction=0.9)


def test_validation_file_name_is_one_rule_for_convert_train_and_evaluate(project):
    from hive import paths, training
    from hive.config import load_config

    assert paths.validation_file(Path("d/personality.jsonl")) == Path("d/personality.val.jsonl")
    assert paths.validation_file(Path("data/train.json")) == Path("data/train.val.json")
    train = project / "data" / "train.json"
    train.parent.mkdir()
    train.write_text("{}\n")
    paths.validation_file(train).write_text("{}\n")
    cfg = load_config(None, {"paths.final": "data/train.json"})
    assert training.data_files(cfg) == (train, paths.validation_file(train))


message_rows = st.lists(
    st.tuples(st.integers(0, 600), st.sampled_from(["Me", "Bo", "Cy", None]),
              st.sampled_from(["text", "text", "edited", "media", "deleted", "system"]),
              st.text(min_size=0, max_size=30)),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=message_rows, limit=st.integers(40, 200), fraction=st.sampled_from([0.0, 0.2, 0.5]))
def test_any_chat_gives_well_formed_fitting_leak_free_samples(rows, limit, fraction):
    t, chats = datetime(2024, 1, 1), []
    for c in range(2):
        chats.append(Chat(f"chat{c}", [
            Message(t + timedelta(minutes=m * (c + 1)), s, s == "Me", "system" if s is None else k, x)
            for m, s, k, x in sorted(rows, key=lambda r: r[0])
        ]))
    if owner_name(chats) is None:
        return
    cfg = load_config(None, {"model.max_seq_length": limit, "convert.validation_fraction": fraction,
                             "convert.merge_gap_minutes": 5.0, "convert.session_gap_hours": 1.0})
    counter = TokenCounter()
    result = build(chats, cfg, counter)
    samples = messages(result)
    assert all(s[0]["role"] == U and s[-1]["role"] == A and s[-1]["content"].strip() for s in samples)
    assert all(n <= limit for n in counter.count_conversations(samples))
    train_text = {json.dumps(s["messages"]) for s in result.train}
    assert not train_text & {json.dumps(s["messages"]) for s in result.validation}
