"""Does the demo's clone answer, or echo the message back? Asks the demo's exported model (what `make demo` prints a
reply of), models trained and exported the same way with other settings, and any other model, a set of openers over
several seeds, with several sampling settings, and prints one table: how often a reply only repeats part of the
message (echo), ends by itself (stop), its length, and how often the reply to the demo's showcase message echoes
it over more seeds, with the one at seed 0.

    python demo.py                       # demo_workspace/ with dataset/, outputs/demo/, exports/demo/
    nice -n 10 python bench/bench_demo_reply.py demo_workspace --variants lr3e-4=training.learning_rate=3e-4 \
        --sampling rp1.0=repetition_penalty=1.0 greedy=temperature=0 --models base=smollm2-135m

A variant NAME=KEY=VALUE[,KEY=VALUE...] trains outputs/bench-NAME with samples/demo_config.yaml plus those settings
and exports it as the demo does (GGUF q4_k_m, to exports/bench-NAME/), once: delete both to redo it. A sampling
setting NAME=KEY=VALUE[,...] changes `generation` for the replies. --models NAME=SOURCE adds any source chat.py takes
(smollm2-135m: the bundled base GGUF). Baseline: the demo as configured. --out FILE writes the table's rows as JSON
(bench/record.py), with each row's resolved sampling settings.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import record  # noqa: E402

CONFIG = REPO / "samples" / "demo_config.yaml"
OPENERS = ["hey! how was your weekend?", "hey, are you free tonight?", "what are you up to?",
           "did you watch the game last night?", "how's work going?", "wanna grab lunch tomorrow?",
           "lol that's hilarious", "where are you from?", "do you like harry potter?", "good morning!"]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def is_echo(message: str, reply: str) -> bool:
    """The reply's words are a run of the message's words: it says nothing the message did not."""
    said, heard = " ".join(words(reply)), " ".join(words(message))
    return bool(said) and f" {said} " in f" {heard} "


def settings(spec: str) -> tuple[str, dict]:
    import yaml

    name, _, pairs = spec.partition("=")
    return name, {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in pairs.split(",") if p)}


def stage(workspace: Path, script: str, *args: str) -> None:
    command = [sys.executable, str(REPO / script), "--config", str(CONFIG), *args]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "HIVE_HOME": str(workspace), "HF_HUB_OFFLINE": "1"}
    started = time.time()
    if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit(f"bench_demo_reply: {script} failed")
    print(f"  {time.time() - started:.0f} s", flush=True)


def train_and_export(workspace: Path, name: str, overrides: dict) -> Path:
    """The demo's training with `overrides`, exported as the demo exports (without the reply check: this counts)."""
    run, export = workspace / "outputs" / f"bench-{name}", workspace / "exports" / f"bench-{name}"
    if not (run / "run.json").exists():
        stage(workspace, "train.py", "--run", run.name, *(f"--set={k}={v}" for k, v in overrides.items()))
    if not export.is_dir():
        stage(workspace, "export_model.py", "--input", str(run), "--name", export.name, "--set=export.verify=false")
    return next(p for p in sorted(export.glob("*.gguf")) if "-lora-" not in p.name)


def demo_gguf(workspace: Path) -> Path:
    return next(p for p in sorted((workspace / "exports" / "demo").glob("*.gguf")) if "-lora-" not in p.name)


def ask(source: Path, generation: dict, seeds: int, showcase_seeds: int) -> dict:
    """Every opener at `seeds` seeds, and the showcase message at `showcase_seeds` seeds, each first after loading (as
    the demo's chat stage asks it)."""
    from hive.chat import load_clone
    from hive.config import load_config

    cfg = load_config(CONFIG, {f"generation.{k.removeprefix('generation.')}": v for k, v in generation.items()})
    rows, showcase = [], []
    for seed in range(max(seeds, showcase_seeds)):
        cfg.generation.seed = seed
        clone = load_clone(source, cfg)  # loaded per seed: the seed is set when a model is loaded
        try:
            for opener in OPENERS if seed < seeds else OPENERS[:1]:
                reply = clone.reply([{"role": "user", "content": opener}])
                if opener == OPENERS[0] and seed < showcase_seeds:
                    showcase.append(reply)
                if seed < seeds:
                    rows.append((is_echo(opener, reply), clone.last.finish_reason == "stop", len(words(reply))))
        finally:
            clone.close()
    n = len(rows)
    return {"echo": sum(r[0] for r in rows) / n, "stop": sum(r[1] for r in rows) / n,
            "words": sum(r[2] for r in rows) / n, "showcase echoes": sum(is_echo(OPENERS[0], r) for r in showcase),
            "showcase": showcase[0].replace("\n", " / "), "showcase echo at seed 0": is_echo(OPENERS[0], showcase[0]),
            "temperature": cfg.generation.temperature, "repetition_penalty": cfg.generation.repetition_penalty}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workspace", type=Path, help="a demo workspace (python demo.py makes demo_workspace/)")
    p.add_argument("--variants", nargs="*", default=[], help="NAME=KEY=VALUE[,KEY=VALUE] training variants")
    p.add_argument("--sampling", nargs="*", default=[], help="NAME=KEY=VALUE[,KEY=VALUE] generation variants")
    p.add_argument("--models", nargs="*", default=[], help="NAME=SOURCE: other models to ask (a run, a .gguf, ...)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per opener (default 3)")
    p.add_argument("--showcase-seeds", type=int, default=30, help="seeds for the showcase message (default 30)")
    p.add_argument("--out", type=Path, help="write the table's rows as JSON here (bench/record.py)")
    args = p.parse_args(argv)
    workspace = args.workspace.resolve()
    os.environ["HIVE_HOME"] = str(workspace)
    from hive.models import bundled_gguf

    sources = {"demo": demo_gguf(workspace)}
    for spec in args.variants:
        name, overrides = settings(spec)
        sources[name] = train_and_export(workspace, name, overrides)
    for spec in args.models:
        name, _, source = spec.partition("=")
        sources[name] = bundled_gguf(source) if source == "smollm2-135m" else Path(source)
    samplings = dict([("demo", {})] + [settings(s) for s in args.sampling])
    print(f"\n{len(OPENERS)} openers x {args.seeds} seeds; showcase {OPENERS[0]!r} x {args.showcase_seeds} seeds\n")
    print("| model | sampling | echo | stop | words | showcase echoes | showcase reply, seed 0 |")
    print("|---|---|---:|---:|---:|---:|---|")
    rows = []
    for name, source in sources.items():
        for sampling, generation in samplings.items():
            r = ask(source, generation, args.seeds, args.showcase_seeds)
            print(f"| {name} | {sampling} | {r['echo']:.0%} | {r['stop']:.0%} | {r['words']:.1f} | "
                  f"{r['showcase echoes']}/{args.showcase_seeds} | {r['showcase']} |", flush=True)
            rows.append({"model": name, "sampling": sampling, **r})
            if args.out:
                record.write(args.out, rows, argv, openers=len(OPENERS), seeds=args.seeds,
                             showcase_seeds=args.showcase_seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
