"""A reply as WhatsApp messages ("bubbles"). convert.py joins a run of my messages into one reply with newlines, so
the clone writes a burst of messages as lines; each non-blank line is one message, without its surrounding spaces.
chat.py shows one `clone>` bubble per message and the server can return them as a list (hive/server.py)."""

from collections.abc import Iterable, Iterator


def split(reply: str) -> list[str]:
    """The messages of `reply`: its non-blank lines, stripped."""
    return [line.strip() for line in reply.split("\n") if line.strip()]


def stream(pieces: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(message index, new text) while the pieces of a reply arrive, so a terminal can show the messages as they grow;
    the texts of each index add up to split() of the whole reply."""
    reply, shown = "", []
    for piece in pieces:
        reply += piece
        for index, message in enumerate(split(reply)):
            if index == len(shown):
                shown.append("")
            if len(message) > len(shown[index]):
                yield index, message[len(shown[index]):]
                shown[index] = message
