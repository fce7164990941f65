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

from hive import cli, runs, training


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    cli.config_flag(parser, "--data", key="paths.final", metavar="FILE",
                    help="training JSONL (validation: FILE's .val.jsonl)")
    cli.config_flag(parser, "--model", key="model.base_model", metavar="MODEL",
                    help="hub id, local folder, .gguf or smollm2-135m")
    cli.config_flag(parser, "--run", key="training.run_name", metavar="NAME",
                    help="a name under outputs/, or a folder (default: a timestamp)")
    cli.config_flag(parser, "--max-steps", key="training.max_steps", metavar="N", type=int,
                    help="stop after N optimizer steps")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                        help="continue the run from its newest complete checkpoint, "
                             "or from the given checkpoint folder")
    args, cfg = cli.parse(parser, argv)
    if os.environ.get("RANK", "0") == "0":  # under accelerate/torchrun only the first process prints
        cli.print_settings("train", cfg, ["paths", "model", "lora", "training"])
    try:
        result = training.train(cfg, resume=args.resume)
    except training.BackendFailed as e:
        if cfg.training.backend != "auto" or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise
        command = training.fallback_argv(sys.argv if argv is None else ["train.py", *argv], e)
        print(f"notice: Unsloth failed ({e.reason}); continuing with transformers: python {' '.join(command)}",
              flush=True)
        os.execv(sys.executable, [sys.executable, *command])
    if not result.is_main:
        return 0
    record, name = result.record, runs.spelling(result.run_dir, cfg.path("outputs"))
    validation = (f"{record.eval_loss:.4f}" if record.eval_loss is not None else
                  "n/a (no validation file)" if record.validation is None else "not computed (interrupted)")
    rows = {
        "run": str(result.run_dir),
        "steps": record.steps,
        "epochs": f"{record.epochs:.2f}",
        "training time": f"{record.train_seconds:.1f} s",
        "tokens/s": f"{record.tokens_per_second:,.0f} (real tokens, no padding)" if record.tokens_per_second else "n/a",
        "train loss": f"{record.train_loss:.4f}" if record.train_loss is not None else "n/a",
        "validation loss": validation,
    }
    if record.interrupted:
        cli.print_summary("train (interrupted)", {**rows, "checkpoint": str(result.checkpoint)},
                          f"python train.py --run {name} --resume")
        return 130
    cli.print_summary("train", {**rows, "model": record.final_model},
                      f"python evaluate.py --run {name}\n  then: python export_model.py --input {name}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
