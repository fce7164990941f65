"""Talk to your clone in the terminal, with the chat template, persona and generation settings it was trained with.

    python chat.py                                          # the newest run in outputs/ (adapter on the base model)
    python chat.py exports/hive-personality/hive-personality-q4_k_m.gguf    # a GGUF, in llama.cpp
    python chat.py my-run --prompt "hey, you free tonight?"                 # one reply, then exit
    python chat.py --serve exports/hive-personality       # OpenAI-compatible API at http://127.0.0.1:8000/v1

SOURCE may be a run (its name under outputs/, or its folder), an adapter or merged model folder, an exports/<name>/
folder or a .gguf file; a path is relative to the project root.
In the conversation: /reset forgets the history, /quit (or Ctrl-D) leaves. A reply of several lines is a burst of
messages: one `clone>` bubble each. --serve listens on 127.0.0.1; another --host needs --api-key (or HIVE_API_KEY).
"""

import os
import sys
import time

from hive import bubbles, cli, server


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    parser.add_argument("source", nargs="?", help="what to load (default: the newest run in paths.outputs)")
    parser.add_argument("--prompt", help="send this one message, print the reply and exit")
    cli.config_flag(parser, "--temperature", key="generation.temperature", type=float, metavar="T",
                    help="sampling temperature; 0 = greedy")
    cli.config_flag(parser, "--max-new-tokens", key="generation.max_new_tokens", type=int, metavar="N",
                    help="longest reply, in tokens")
    parser.add_argument("--serve", action="store_true", help="answer the OpenAI API (/v1/chat/completions) instead")
    parser.add_argument("--host", default="127.0.0.1", help="address --serve listens on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port --serve listens on")
    parser.add_argument("--api-key", default=os.environ.get(server.API_KEY_ENV) or None,
                        help="key that --serve requires of clients (default: $HIVE_API_KEY); needed off 127.0.0.1")
    args, cfg = cli.parse(parser, argv)
    cli.print_settings("chat", cfg, ["generation"])

    from hive.chat import load_clone

    if args.serve:
        server.check_binding(args.host, args.api_key)

    started = time.time()
    clone = load_clone(args.source, cfg)
    print(f"  loaded {clone.source} in {time.time() - started:.1f} s; persona: {clone.system_prompt or 'none'}; "
          f"context {clone.max_seq_length:,} tokens", flush=True)
    if clone.notice:
        print(f"  notice: {clone.notice}", flush=True)
    try:
        if args.serve:
            url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}/v1"
            print(f"serving the OpenAI API at {url} (POST /chat/completions, GET /models"
                  f"{'; API key required' if args.api_key else ''}); Ctrl-C stops", flush=True)
            cli.print_summary("chat", {"replies": server.serve(clone, args.host, args.port, args.api_key)})
            return 0
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
        show(clone, history)
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
        show(clone, history)
        history.append({"role": "assistant", "content": clone.last.text.strip()})
        turns += 1
    return turns


def show(clone, history: list[dict]) -> None:
    """The clone's reply, streamed as bubbles: one `clone>` line per message, each shown as it grows."""
    current = -1
    for index, text in bubbles.stream(clone.stream(history)):
        if index != current:
            print(("\n" if current >= 0 else "") + "clone> ", end="")
            current = index
        print(text, end="", flush=True)
    print("clone>" if current < 0 else "")
    if clone.last.finish_reason == "length":
        print(f"(cut off at {clone.last.tokens} tokens: generation.max_new_tokens)")


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
