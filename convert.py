"""Stage 2: turn the cleaned chats into training conversations (Hugging Face `messages` JSONL).

    python convert.py                               # dataset/cleaned -> dataset/final/personality.jsonl (+ .val.jsonl)
    python convert.py --tokenizer smollm2-135m      # count tokens with this tokenizer instead of model.base_model's
    python convert.py --mode sliding                # the original Hive pairing (my message i -> my message i+1)
    python convert.py --input DIR --output FILE --set convert.system_prompt="You are {me}."

Mode `reply` (default): other people's messages become user turns and my replies assistant turns, in sessions, with
up to convert.max_context_turns earlier turns as context; see hive/samples.py for the exact rules.
"""

import sys
import time

from hive import cli, paths
from hive.samples import convert, load_chats
from hive.tokens import load_counter


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    cli.config_flag(parser, "--input", key="paths.cleaned", metavar="DIR",
                    help="cleaned chats (default: paths.cleaned)")
    cli.config_flag(parser, "--output", key="paths.final", metavar="FILE", help="training file (default: paths.final)")
    cli.config_flag(parser, "--mode", key="convert.mode", choices=["reply", "sliding"], help="default: convert.mode")
    parser.add_argument("--tokenizer", metavar="NAME", help="tokenizer that counts tokens (hub id, folder, .gguf, "
                        "smollm2-135m, or 'estimate'); default: model.base_model's, else the estimate")
    args, cfg = cli.parse(parser, argv)
    started = time.time()
    cli.print_settings("convert", cfg, ["convert"])
    output = cfg.path("final")
    print(f"  input: {cfg.path('cleaned')}\n  output: {output}\n  model.max_seq_length: {cfg.model.max_seq_length}")
    chats = load_chats(cfg.path("cleaned"))  # before the tokenizer: a missing input fails at once
    counter = load_counter(args.tokenizer, cfg.model.base_model, cfg.model.chat_template)
    print(f"  tokens counted with: {counter.name}", flush=True)
    result = convert(cfg, chats, output, counter)
    rows = {**result.info, "training samples": len(result.train), "validation samples": len(result.validation)}
    rows.update({f"dropped: {reason}": n for reason, n in sorted(result.drops.items())})
    rows.update({"written": str(output), "validation": str(paths.validation_file(output))})
    cli.print_summary("convert", rows, f"python validate_dataset.py --input {output}", started)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
