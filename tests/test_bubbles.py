"""hive.bubbles: a reply's lines are its WhatsApp messages, whole or streamed in any pieces, and chat.py shows one
`clone>` bubble per message.

    python -m pytest -q tests/test_bubbles.py
"""

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

import chat as chat_script
from hive import bubbles


def test_each_non_blank_line_is_a_message_without_its_spaces():
    assert bubbles.split("haha yes\n  see you at 8 \n\n\nbring snacks") == ["haha yes", "see you at 8", "bring snacks"]
    assert bubbles.split(" ok ") == ["ok"]
    assert bubbles.split("a\r\nb") == ["a", "b"]
    assert bubbles.split("") == bubbles.split(" \n \n") == []


@given(st.lists(st.text(alphabet="ab \n\r😂", max_size=6), max_size=12))
def test_streamed_pieces_add_up_to_the_messages_of_the_whole_reply(pieces):
    messages: list[str] = []
    for index, text in bubbles.stream(pieces):
        assert text and index <= len(messages)
        if index == len(messages):
            messages.append("")
        messages[index] += text
    assert messages == bubbles.split("".join(pieces))


class Pieces:
    """A stand-in clone that streams the given pieces and then ends for `finish_reason`."""

    def __init__(self, pieces: list[str], finish_reason: str = "stop"):
        self.pieces, self.last = pieces, SimpleNamespace(finish_reason=finish_reason, tokens=len(pieces))

    def stream(self, history):
        yield from self.pieces


def test_a_burst_is_shown_as_bubbles_while_it_streams(capsys):
    chat_script.show(Pieces(["hey", "!\n", " ", "yes\n\ni'm", " in "]), [])
    assert capsys.readouterr().out == "clone> hey!\nclone> yes\nclone> i'm in\n"
    chat_script.show(Pieces(["", " \n"]), [])
    assert capsys.readouterr().out == "clone>\n"
    chat_script.show(Pieces(["so", " basically"], "length"), [])
    assert capsys.readouterr().out == "clone> so basically\n(cut off at 2 tokens: generation.max_new_tokens)\n"
