"""hive/style.py: style metrics by hand, how far a metric is from mine, the stop rate, and the indistinguishability
classifier (identical replies score exactly 0.5, obviously different ones close to 1)."""

import pytest

from hive.style import gap, indistinguishability, stop_rate, style_metrics, words


def test_style_metrics_by_hand():
    replies = ["yeah!! be there at 8 😂", "Sure, which ones?", "i know\nstarting now", "ok"]
    m = style_metrics(replies, vocabulary={"yeah", "be", "there", "ok"})
    assert m["words_per_reply"] == pytest.approx(13 / 4)  # "8" is a word
    assert m["chars_per_reply"] == pytest.approx(sum(map(len, replies)) / 4)
    assert m["lowercase_start"] == pytest.approx(3 / 4)
    assert m["punctuation_per_word"] == pytest.approx(4 / 13)  # ! ! , ?
    assert m["emoji_share"] == pytest.approx(1 / 4)
    assert m["question_share"] == pytest.approx(1 / 4)
    assert m["vocab_overlap"] == pytest.approx(4 / 13)
    assert m["multiline_share"] == pytest.approx(1 / 4)


def test_words_keep_apostrophes_and_skip_emoji_and_punctuation():
    assert words("I'm SO done... 😂 don't-care") == ["i'm", "so", "done", "don't", "care"]


def test_style_metrics_of_nothing_is_zero_not_a_crash():
    assert set(style_metrics([], set()).values()) == {0.0}


def test_gap_is_absolute_for_shares_and_relative_for_means():
    assert gap("question_share", 0.30, 0.25) == pytest.approx(0.05)
    assert gap("multiline_share", 0.40, 0.45) == pytest.approx(0.05)
    assert gap("words_per_reply", 23.0, 20.0) == pytest.approx(0.15)
    assert gap("punctuation_per_word", 0.1, 0.2) == pytest.approx(0.5)
    assert gap("chars_per_reply", 0.0, 0.0) == 0.0 and gap("chars_per_reply", 3.0, 0.0) == 1.0


def test_stop_rate_is_the_share_of_replies_that_ended():
    assert stop_rate([True, False, True, True]) == 0.75
    assert stop_rate([]) == 0.0


REAL = ["lol yeah", "omg no way", "ok cool", "haha same", "nah im good", "wait what", "yep", "sure thing",
        "idk tbh", "lmao", "k see u", "ya", "nope", "hmm maybe", "cool cool", "for real", "aw thanks", "ugh",
        "no worries", "soon"]
FORMAL = ["Certainly! As an AI language model, I would be happy to help you with that request.",
          "Thank you for your message. Here is a detailed answer to your question about this topic.",
          "I understand your concern. Let me explain the main points in a clear and structured way.",
          "That is a great question! There are several factors that we should consider carefully here."]


def test_identical_replies_cannot_be_told_apart():
    assert indistinguishability(REAL, list(REAL)) == pytest.approx(0.5)


def test_obviously_different_replies_are_told_apart():
    generated = [FORMAL[i % len(FORMAL)] for i in range(len(REAL))]
    assert indistinguishability(REAL, generated) > 0.95


def test_indistinguishability_is_seeded_and_needs_a_context_per_fold():
    generated = REAL[1:] + REAL[:1]
    assert indistinguishability(REAL, generated, seed=3) == indistinguishability(REAL, generated, seed=3)
    assert indistinguishability(REAL[:4], REAL[:4], folds=5) is None
    with pytest.raises(ValueError, match="3 real replies but 2"):
        indistinguishability(REAL[:3], REAL[:2])
