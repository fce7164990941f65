"""Talk to your clone in the terminal, with the chat template, persona and generation settings it was trained with.

    python chat.py                                          # the newest run in outputs/ (adapter on the base model)
    python chat.py exports/hive-personality/hive-personality-q4_k_m.gguf    # a GGUF, in llama.cpp
    python chat.py my-run --prompt "hey, you free tonight?"                 # one reply, then exit

SOURCE may be a run (its name under outputs/, or its folder), an adapter or merged model folder, an exports/<name>/
folder or a .gguf file; a path is relative to the project root.
In the conversation: /reset forgets the history, /quit (or Ctrl-D) leaves.
"""

import sys
import time

from hive import cli


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    parser.add_argument("source", nargs="?", help="what to load (default: the newest run in paths.outputs)")
    parser.add_argument("--prompt", help="send this one message, print the reply and exit")
    cli.config_flag(parser, "--temperature", key="generation.temperature", type=float, metavar="T",
                    help="sampling temperature; 0 = greedy")
    cli.config_flag(parser, "--max-new-tokens", key="generation.max_new_tokens", type=int, metavar="N",
                    help="longest reply, in tokens")
    args, cfg = cli.parse(parser, argv)
    cli.print_settings("chat", cfg, ["generation"])

    from hive.chat import load_clone

    started = time.time()
    clone = load_clone(args.source, cfg)
    print(f"  loaded {clone.source} in {time.time() - started:.1f} s; persona: {clone.system_prompt or 'none'}; "
          f"context {clone.max_seq_length:,} tokens", flush=True)
    if clone.notice:
        print(f"  notice: {clone.notice}", flush=True)
    try:
        turns = converse(clone, args.prompt)
    finally:
        clone.close()
    if args.prompt is None:
        cli.print_summary("chat", {"turns": turns})
    return 0


def converse(clone, prompt: str | None) -> int:
    """One reply to `prompt`, or the terminal conversation; returns the number of replies."""
    history: list[dict] = []
    if prompt is not None:
        history.append({"role": "user", "content": prompt})
        for piece in clone.stream(history):
            print(piece, end="", flush=True)
        print()
        return 1
    print("type a message; /reset forgets the conversation, /quit or Ctrl-D leaves")
    turns = 0
    while True:
        try:
            text = input("\nyou> ").strip()
        except EOFError:
            print()
            break
        if text == "/quit":
            break
        if text == "/reset":
            history.clear()
            print("(conversation forgotten)")
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        print("clone> ", end="", flush=True)
        for piece in clone.stream(history):
            print(piece, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": clone.last.text.strip()})
        turns += 1
    return turns


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
