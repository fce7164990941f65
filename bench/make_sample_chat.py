"""Write the sample chats that ship in samples/ (the input of `make demo`): a few real text conversations of the
chitchat-dataset reference sender (MIT licence, strangers chatting; no private data), rendered as Android
WhatsApp exports with that sender as "Me".

    pip install chitchat-dataset
    python bench/make_sample_chat.py samples           # what samples/ holds
"""

import argparse
import sys
from pathlib import Path

from chitchat_exports import REFERENCE_SENDER, android_lines, friend_name, iter_chats


def pick_chats(min_messages: int, max_messages: int, total: int) -> list[tuple[str, list]]:
    """Chats of a readable length, in chat-id order (so the choice is stable), until `total` messages."""
    chosen, count = [], 0
    for chat_id, messages in sorted(iter_chats(REFERENCE_SENDER)):
        if min_messages <= len(messages) <= max_messages:
            chosen.append((chat_id, messages))
            count += len(messages)
            if count >= total:
                break
    return chosen


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--messages", type=int, default=800, help="stop after this many messages in all (default 800)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    chats = pick_chats(40, 120, args.messages)
    for chat_id, messages in chats:
        others = " & ".join(sorted({friend_name(s) for _, s, _ in messages if s != REFERENCE_SENDER}))
        body = "".join(android_lines(messages, REFERENCE_SENDER))
        (args.out / f"WhatsApp Chat with {others} {chat_id[:8]}.txt").write_text(body, encoding="utf-8")
    print(f"wrote {len(chats)} chats ({sum(len(m) for _, m in chats):,} messages) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
