"""Does the fine-tune text more like me than its base model? Scores both on held-out conversations (the validation
file convert.py wrote: sessions the model never trained on) and writes a report into the run folder.

    python evaluate.py                                 # newest run under outputs/, dataset/final/personality.val.jsonl
    python evaluate.py --run my-run --max-samples 100  # a run's name (under outputs/) or its folder
    python evaluate.py --set generation.temperature=0.9 --set evaluate.style_samples=20

Writes outputs/<run>/eval_report.md, eval.json (export_model.py reads it), eval_nll.png and eval_style.png.
"""

import sys
import time

from hive import cli, paths, runs


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    parser.add_argument("--run", metavar="RUN", help="a train.py run: its name or folder (default: the newest)")
    parser.add_argument("--data", metavar="FILE", help="held-out JSONL (default: the .val.jsonl beside paths.final)")
    cli.config_flag(parser, "--max-samples", key="evaluate.max_samples", type=int, metavar="N",
                    help="held-out samples to score (default: evaluate.max_samples)")
    args, cfg = cli.parse(parser, argv)
    started = time.time()
    cli.print_settings("evaluate", cfg, ["evaluate", "generation"])

    from hive.evaluation import evaluate_run, likelihood_table, style_table, verdict
    from hive.style import EXPLANATION

    run = runs.load_run(args.run, cfg.path("outputs"))
    data = paths.resolve(args.data) if args.data else paths.validation_file(cfg.path("final"))
    print(f"  run: {run.folder} (base {run.base_model})\n  data: {data}", flush=True)
    result = evaluate_run(run, data, cfg)

    print(f"\n{likelihood_table(result)}\n\n{verdict(result)}\n\n{style_table(result)}\n\n{EXPLANATION}")
    cli.print_summary("evaluate", {
        "held-out replies": len(result.base.tokens),
        "reply tokens": sum(result.base.tokens),
        "NLL base -> fine-tune": f"{result.base.nll:.3f} -> {result.tuned.nll:.3f} ({result.reduction:.1%} lower)",
        "improved": result.improved,
        "report": str(run.folder / "eval_report.md"),
    }, next_command=f"python export_model.py --input {runs.spelling(run.folder, cfg.path('outputs'))}", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
