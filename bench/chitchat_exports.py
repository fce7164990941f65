"""Render chitchat-dataset conversations (real text chats, PyPI `chitchat-dataset`) as WhatsApp exports, for
benchmarks and quality checks that need real human chat without anyone's private data.

    pip install chitchat-dataset
    python bench/chitchat_exports.py /tmp/chitchat/raw                       # the reference sender, one file per chat
    python bench/chitchat_exports.py /tmp/big --single-file --min-lines 1000000   # one Android export of >= 1M lines

The reference sender (DEVELOPERS.md) becomes "Me"; every other sender gets a stable made-up name.
"""

import argparse
import hashlib
import sys
from datetime import datetime, timedelta
from pathlib import Path

REFERENCE_SENDER = "549cc1d1-270e-4a53-b561-133a8d0086b4"
ME = "Me"
NAMES = ["Alex", "Priya", "Jordan", "Maya", "Sam", "Chris", "Nina", "Omar", "Lena", "Ravi", "Zoe", "Tom",
         "Aisha", "Ben", "Carla", "Dev", "Emma", "Felix", "Gita", "Hugo"]


def friend_name(sender_id: str) -> str:
    h = int(hashlib.sha256(sender_id.encode()).hexdigest(), 16)
    return f"{NAMES[h % len(NAMES)]} {chr(65 + (h // len(NAMES)) % 26)}."


def iter_chats(sender: str | None = REFERENCE_SENDER):
    """(chat_id, [(datetime, sender_id, text), ...]) for every chat the sender took part in (all chats if None)."""
    import chitchat_dataset

    for chat_id, chat in chitchat_dataset.Dataset().items():
        messages = [
            (datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%SZ"), m["sender"], m["text"])
            for burst in chat["messages"] for m in burst
        ]
        if sender is None or any(s == sender for _, s, _ in messages):
            yield chat_id, messages


def android_lines(messages, me: str | None):
    """Android en_GB lines (`14/03/2024, 22:42 - Name: text`), multi-line texts kept as continuation lines."""
    for ts, sender, text in messages:
        name = ME if sender == me else friend_name(sender)
        yield f"{ts:%d/%m/%Y, %H:%M} - {name}: {text}\n"


def write_per_chat(out: Path, sender: str) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    chats = lines = 0
    for chat_id, messages in iter_chats(sender):
        others = sorted({friend_name(s) for _, s, _ in messages if s != sender})
        body = "".join(android_lines(messages, sender))
        (out / f"WhatsApp Chat with {' & '.join(others) or 'me'} {chat_id[:8]}.txt").write_text(body, encoding="utf-8")
        chats += 1
        lines += body.count("\n")
    return chats, lines


def write_single(out: Path, min_lines: int) -> int:
    """One long export: every chat in turn, shifted in time so the file stays chronological, until min_lines."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lines, shift = 0, timedelta(0)
    with open(out, "w", encoding="utf-8") as f:
        while lines < min_lines:
            for _, messages in iter_chats(None):
                for ts, sender, text in messages:
                    f.write(f"{ts + shift:%d/%m/%Y, %H:%M} - {friend_name(sender)}: {text}\n")
                    lines += 1 + text.count("\n")
                if lines >= min_lines:
                    break
            shift += timedelta(days=3 * 365)
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output folder (per chat) or file (--single-file)")
    p.add_argument("--sender", default=REFERENCE_SENDER, help="chitchat sender id rendered as 'Me'")
    p.add_argument("--single-file", action="store_true", help="write one export of all chats (benchmark input)")
    p.add_argument("--min-lines", type=int, default=1_000_000, help="with --single-file: lines to write at least")
    args = p.parse_args(argv)
    if args.single_file:
        print(f"wrote {write_single(args.out, args.min_lines):,} lines to {args.out}")
    else:
        chats, lines = write_per_chat(args.out, args.sender)
        print(f"wrote {chats:,} chats ({lines:,} lines) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
