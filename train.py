"""Stage 3: fine-tune a LoRA adapter on your replies (dataset/final/personality.jsonl from convert.py).

    python train.py                                   # training_config.yaml; Unsloth on a CUDA GPU when installed
    python train.py --model smollm2-135m --run demo   # the bundled offline model (CPU is fine)
    python train.py --run demo --resume               # continue the run from its latest checkpoint
    python train.py --resume outputs/demo/checkpoint-500
    accelerate launch train.py --run big              # several GPUs (data-parallel)

Writes outputs/<run>/: final_model/ (adapter + tokenizer with the chat template it was trained with), checkpoint-N/,
config.yaml, run.json, trainer_log.jsonl and loss.png. Ctrl-C saves a checkpoint and stops; --resume continues.
"""

import os
import sys

from hive import cli, training


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    cli.config_flag(parser, "--data", key="paths.final", metavar="FILE", help="training JSONL (validation: FILE's .val.jsonl)")
    cli.config_flag(parser, "--model", key="model.base_model", metavar="MODEL", help="hub id, local folder, .gguf or smollm2-135m")
    cli.config_flag(parser, "--run", key="training.run_name", metavar="NAME", help="folder under outputs/ (default: a timestamp)")
    cli.config_flag(parser, "--max-steps", key="training.max_steps", metavar="N", type=int, help="stop after N optimizer steps")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                        help="continue the run from its latest checkpoint, or from the given checkpoint folder")
    args, cfg = cli.parse(parser, argv)
    if os.environ.get("RANK", "0") == "0":  # under accelerate/torchrun only the first process prints
        cli.print_settings("train", cfg, ["paths", "model", "lora", "training"])
    result = training.train(cfg, resume=args.resume)
    if not result["is_main"]:
        return 0
    run = result["run_dir"]
    rows = {
        "run": run,
        "steps": result["steps"],
        "epochs": f"{result['epochs']:.2f}",
        "training time": f"{result['train_seconds']:.1f} s",
        "tokens/s": f"{result['tokens_per_second']:,.0f} (real tokens, no padding)" if result["tokens_per_second"] else "n/a",
        "train loss": f"{result['train_loss']:.4f}" if result["train_loss"] is not None else "n/a",
        "validation loss": f"{result['eval_loss']:.4f}" if result["eval_loss"] is not None else "n/a (no validation file)",
    }
    if result["interrupted"]:
        cli.print_summary("train (interrupted)", {**rows, "checkpoint": result["checkpoint"]},
                          f"python train.py --run {os.path.basename(run)} --resume")
        return 130
    cli.print_summary("train", {**rows, "model": result["final_model"]},
                      f"python evaluate.py --run {run}\n  then: python export_model.py --input {run}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
