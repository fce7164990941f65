"""The README's benchmark figures, rendered from the benchmarks' JSON (bench/results/*.json), so that what the README
says cannot drift from what was measured.

    python bench/readme_figures.py            # rewrite the figure blocks of README.md (make figures)
    python bench/readme_figures.py --check    # exit 1, naming the blocks whose text differs from the JSON's

A block is the text between `<!-- figures: NAME -->` and `<!-- /figures -->` in README.md, inside one line (a table
cell) or on lines of its own; NAME is a key of BLOCKS. Outside the blocks, README.md, docs/ and the Kaggle notebook
state no figure that a block shows (tests/test_readme.py checks that, and runs --check). A new measurement: run the
benchmark with `--out bench/results/<name>.json` (bench/record.py adds the command, machine and date to its rows),
then `make figures`, and commit both.
"""

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hive.config import Config  # noqa: E402  (after the sys.path insert)
from hive.fileio import atomic_write  # noqa: E402

RESULTS = REPO / "bench" / "results"
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- figures: ([\w-]+) -->)(.*?)(<!-- /figures -->)", re.S)
WIDTH = 120
MARKUP = re.compile(r"[-+*=_]+$|#+$|[>|]|\d+[.)]$")
BACKENDS = {"unsloth": "Unsloth", "transformers": "HF + PEFT"}
# bench_train configurations, in the order and with the names the README's table gives them
RECIPES = {"a": "the original Hive: Unsloth, batch 4 × 4 padded, grouped by length", "b": "**Hive's defaults**",
           "c": "Hive's defaults on HF + PEFT instead of Unsloth"}
CRASHES = {"convert rejects the output": "output that convert rejects"}
QUALITY = {"grouped": "grouped by length", "random": "random batches"}


def result(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def row(result: dict, **match) -> dict:
    """The last row with these values (with --passes, the steady state)."""
    found = [r for r in result["rows"] if all(r.get(k) == v for k, v in match.items())]
    if not found:
        raise SystemExit(f"readme_figures: no row {match} in bench/results ({result['command']})")
    return found[-1]


def run(result: dict) -> str:
    return f"{result['machine']}; {result['date']}"


def decimal(x: float) -> str:
    """1.0 as 1.0 (a setting), 1.15 as 1.15."""
    return f"{x:.1f}" if round(x, 1) == x else f"{x:g}"


def either(values: list) -> str:
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]


def extract() -> str:
    plain, base, zipped, line = (result(n) for n in ("extract", "extract-baseline", "extract-zip",
                                                     "extract-long-line"))
    hive, whatstk, npm = (row(plain, tool=t) for t in ("hive extract.py --jobs auto", "whatstk (PyPI)",
                                                       "whatsapp-chat-parser (npm)"))

    def versus(r: dict, key: str, jobs: str = "auto") -> tuple[float, float]:
        old = [x for x in r["rows"] if x["tool"].startswith("hive @") and x["tool"].endswith(f"--jobs {jobs}")]
        return row(r, tool=f"hive extract.py --jobs {jobs}")[key], old[-1][key]

    def elsewhere(r: dict) -> str:
        return f" ({run(r)})" if run(r) != run(base) else ""

    now, old = versus(base, "cpu_s")
    now1, old1 = versus(base, "cpu_s", "1")
    zip_now, zip_old = versus(zipped, "cpu_s")
    chats = row(zipped, tool="hive extract.py --jobs auto")["chats"]
    line_now, line_old = versus(line, "peak_rss_mb")
    return (f"Hive {hive['wall_s']:.2f} s / {hive['peak_rss_mb']:,.0f} MB peak; whatstk {whatstk['wall_s']:.1f} s / "
            f"{whatstk['peak_rss_mb']:,.0f} MB; whatsapp-chat-parser {npm['wall_s']:.1f} s / "
            f"{npm['peak_rss_mb']:,.0f} MB "
            f"(medians, same run; {run(plain)}). Against the code before issue 14 (`--baseline`, in CPU seconds: "
            f"{run(base)}): 1M lines {now:.2f} vs {old:.2f} CPU s (one process: {now1:.2f} vs {old1:.2f}); zip of "
            f"{zipped['zip_members']:,} chats {zip_now:.1f} vs {zip_old:.1f} CPU s ({chats / zip_now:.0f} vs "
            f"{chats / zip_old:.1f} chats per CPU second: the zip is opened once){elsewhere(zipped)}; one "
            f"{line['long_line_mb']} MB line {line_now:,.0f} vs {line_old:,.0f} MB peak{elsewhere(line)}")


def fuzz_extract() -> str:
    r = result("fuzz_extract")
    now, *others = r["rows"]

    def crashes(x: dict) -> str:
        return ", ".join(f"{CRASHES.get(kind, kind)} {n:,}" for kind, n in x["crashes"].items())

    total = sum(now["crashes"].values())
    adds_up = "" if total else "; every written file's lines add up"
    text = (f"{now['code']}: {total:,} crashes{f' ({crashes(now)})' if total else ''} in {now['runs']:,} runs of "
            f"{r['per_run']} files ({now['files written']:,} chats written, {now['files skipped']:,} files or members "
            f"skipped with their reason, {now['runs ending in HiveError']:,} runs ending in a one-line error"
            f"{adds_up}), {now['inputs_per_s']:.0f} inputs/s")
    for x in others:
        text += f"; {x['code']}: {sum(x['crashes'].values()):,} of {x['runs']:,} runs crashed ({crashes(x)})"
    return text + f" ({run(r)})"


def redact() -> str:
    r = result("redact")
    rows, chat, matcher = r["rows"], r["chat"], r["phonenumbers_s"]
    slowest = max(rows, key=lambda x: x["x_scan"])
    digits = row(r, input="digits")
    slower = [matcher[x["input"]] / x["redact_s"] for x in rows] + [matcher["chat text"] / chat["redact_s"]]
    return (f"{r['mb']:g} MB: {min(x['redact_s'] for x in rows):.2f}-{max(x['redact_s'] for x in rows):.2f} s per "
            f"kind, {min(x['x_scan'] for x in rows):.1f}-{slowest['x_scan']:.1f}× one `\\w+` pass (slowest: "
            f"{slowest['input']}, {slowest['placeholders']:,} placeholders written); the first redactor: "
            f"{digits['old_s']:.1f} s on {r['old_kb']} KB of digits glued to a word (now "
            f"{digits['new_s'] * 1000:.1f} ms); {chat['messages']:,} real messages {chat['redact_s']:.2f} s (first "
            f"redactor {chat['old_s']:.2f} s); PhoneNumberMatcher {min(slower):.1f}-{max(slower):.1f}× slower. Recall, "
            f"and what redaction changes in real chats: [Privacy](#privacy) ({run(r)})")


def privacy() -> str:
    r = result("redact")
    chat, recall = r["chat"], {x["finder"]: x for x in r["recall"]}
    hive = recall["hive (phone only)"]
    valid = sorted(x["national"]["share"] for name, x in recall.items() if name.endswith(" VALID"))
    possible = next(x for name, x in recall.items() if name.endswith(" POSSIBLE"))
    kinds = chat["placeholders"]
    changes = (f"all to `{next(iter(kinds))}`" if len(kinds) == 1
               else ", ".join(f"{n} to `{kind}`" for kind, n in kinds.items()))
    share = {fmt: f"{hive[fmt]['share']:.0%}" for fmt in ("international", "E.164", "national")}
    caught = (f"{share['international']} in international and E.164 format" if share["international"] == share["E.164"]
              else f"{share['international']} in international and {share['E.164']} in E.164 format")
    found = possible["national"]["share"]
    return (f"Of the {chat['messages']:,} real messages of chitchat-dataset, redaction changes {chat['changed']:,}, "
            f"{changes}. On libphonenumber's example mobile and fixed-line numbers of all {r['regions']} regions, "
            f"written in a sentence, phone redaction catches {caught} and {share['national']} in national format (the "
            f"misses are mostly local numbers of 8 digits or fewer). The `phonenumbers` package (PhoneNumberMatcher) "
            f"was measured as an alternative and not taken: it must be told one region, and then finds "
            f"{valid[0] * 100:.0f}-{valid[-1] * 100:.0f}% of the national numbers (VALID), or "
            f"{'all' if found == 1 else f'{found:.0%}'} of them but also changes {possible['changed']:,} of the real "
            f"messages (POSSIBLE: dates, scores), against {hive['changed']:,} for Hive's rules (`{r['command']}`, "
            f"{run(r)}).")


def quality() -> str:
    def nlls(r: dict) -> str:
        return ", ".join(f"{QUALITY.get(x['model'], x['model'])} "
                         + (f"**{x['nll']:.3f}**" if x["model"] == "reply" else f"{x['nll']:.3f}") for x in r["rows"])

    modes, grouping = result("quality"), result("quality-grouping")
    held = f" ({grouping['heldout_replies']:,} held-out replies)" if grouping.get("heldout_replies") else ""
    return (f"{modes['base_model']}, {modes['steps']} steps × {modes['batch']} each ({run(modes)}): held-out NLL "
            f"{nlls(modes)}. `--compare grouping`, {grouping['steps']} steps × {grouping['batch']}: {nlls(grouping)}"
            f"{held}")


def train() -> str:
    r = result("train")
    a, b, c = (row(r, config=x) for x in "abc")
    return (f"4-bit, {b['samples']:,} samples, real tok/s after warm-up: Hive's defaults (b) "
            f"**{b['steady_tok_s'] / a['steady_tok_s']:.1f}×** the original recipe (a), "
            f"{b['steady_tok_s'] / c['steady_tok_s']:.1f}× HF + PEFT (c); one epoch "
            f"{a['epoch_min_full'] / b['epoch_min_full']:.1f}× shorter than (a)'s ({run(r)}): the table in "
            f"[Training speed](#training-speed)")


def training_speed() -> str:
    r, whole = result("train"), result("train-whole-file")
    samples, total = r["rows"][0]["samples"], r["data"]["samples"]
    lines = [f"Measured with a 3B model (Llama-3.2-3B shapes) at 4-bit, on the first {samples:,} of {total:,} real "
             f"chat samples, in one run (`{r['command']}`; {run(r)}), after warm-up:", "",
             f"| recipe | real tokens/s | one epoch of {total:,} samples | peak GiB, {samples:,} samples | "
             "peak GiB, whole file |", "|---|---:|---:|---:|---:|"]
    for config, recipe in RECIPES.items():
        x = row(r, config=config)
        peak = [y["peak_gib"] for y in whole["rows"] if y["config"] == config]
        tok, epoch = f"{x['steady_tok_s']:,.0f}", f"{x['epoch_min_full']:.1f} min"
        if recipe.startswith("**"):
            tok, epoch = f"**{tok}**", f"**{epoch}**"
        lines.append(f"| {recipe} | {tok} | {epoch} | {x['peak_gib']:.2f} | {f'{peak[-1]:.2f}' if peak else ''} |")
    return "\n".join(lines)


def training_speed_notes() -> str:
    r, whole, variants = result("train"), result("train-whole-file"), result("train-variants")
    a, b2k, bx = row(r, config="a"), row(variants, config="b2k"), row(variants, config="bx")
    samples = a["samples"]
    return (f"The original's peak comes from its longest batch, 4 samples padded to the longest sample; the first "
            f"{samples:,} samples hold none longer than {r['data']['max_tokens_trained']:,} tokens, the whole file one "
            f"of {r['data']['max_tokens']:,} (its sampler trains the longest batch first, so "
            f"{row(whole, config='a')['steps']} steps over the whole file measure it). Hive's peak is bounded by the "
            f"token limit, which batches of 16 × 256 tokens reach in both runs ({row(whole, config='b')['steps']} "
            f"steps over the whole file; `{whole['command']}`). With `max_tokens_per_pass: 2048` Hive stays under the "
            f"original's memory on any data ({b2k['peak_gib']:.2f} GiB on the {samples:,} samples) at "
            f"{b2k['steady_tok_s'] / a['steady_tok_s']:.1f}× its speed ({b2k['steady_tok_s']:,.0f} tokens/s, "
            f"{b2k['epoch_min_full']:.1f} min); with no limit (`0`) it ran at {bx['steady_tok_s']:,.0f} tokens/s but "
            f"peaked at {bx['peak_gib']:.2f} GiB on the {samples:,} samples, and its peak grows with the longest "
            f"samples (`{variants['command']}`; {run(variants)}).")


def packing() -> str:
    r = result("packing")
    layouts = ("real", f"group{r['bucket']}", f"group{r['bucket']}-rows")
    first, *more = sorted({x["batch"] for x in r["rows"]})
    real, grouped, rows = (row(r, batch=first, layout=name) for name in layouts)
    text = (f"Unsloth without a varlen kernel, {first} samples: padding-free with {real['runs']:.0f} "
            f"segment runs {real['ms']:,.0f} ms, one run (grouped) {grouped['ms']:,.0f} ms, padded grouped rows "
            f"{rows['ms']:,.0f} ms")
    for batch in more:
        text += f"; {batch} samples: " + " / ".join(f"{row(r, batch=batch, layout=n)['ms']:,.0f}" for n in layouts)
        text += " ms"
    return text + f" ({run(r)})"


def demo_reply() -> str:
    r, default = result("demo_reply"), Config().generation
    demo = [x for x in r["rows"] if x["model"] == "demo"]
    measured = sorted((x for x in demo if x["echo"] is not None), key=lambda x: -x["temperature"])
    parts = []
    for x in measured:
        notes = [note for note, holds in (
            ("the default", (x["temperature"], x["repetition_penalty"]) == (default.temperature,
                                                                            default.repetition_penalty)),
            ("the demo's", x["sampling"] == "demo")) if holds]
        temperature = f"**{decimal(x['temperature'])}**" if x["sampling"] == "demo" else decimal(x["temperature"])
        seed0 = (", seed 0 among them" if x["showcase echo at seed 0"]
                 else f' (seed 0: "{x["showcase"]}")' if x["showcase"] else "")
        label = f" ({', '.join(notes)})" if notes else ""
        parts.append(f"temperature {temperature}{label}: echo {x['echo']:.0%}, showcase echoed in "
                     f"{x['showcase echoes']} of {r['showcase_seeds']} seeds{seed0}")
    stops = {x["stop"] for x in measured}
    text = "; ".join(parts)
    if len(stops) == 1:
        text += f"; stop {stops.pop():.0%} for {'both' if len(measured) == 2 else 'all'}"
    echoing = next((x for x in measured if x["showcase echo at seed 0"]), None)
    if echoing:
        penalties = sorted((x for x in demo if x["temperature"] == echoing["temperature"]),
                           key=lambda x: x["repetition_penalty"])
        values = [decimal(x["repetition_penalty"]) for x in penalties]
        if all(x["showcase echo at seed 0"] for x in penalties):
            text += (f". repetition_penalty {either(values)} at {decimal(echoing['temperature'])} leaves the seed-0 "
                     "echo as it is")
        else:
            text += ". The seed-0 echo ends at repetition_penalty " + either(
                [value for value, x in zip(values, penalties) if not x["showcase echo at seed 0"]])
    return text + f" ({run(r)})"


def batches(r: dict) -> str:
    """How bench_multigpu's runs drew their batches, and whether that is still Hive's default."""
    free = {x["padding_free"] for x in r["rows"]}
    kind = f"{'length-grouped' if r['group_by_length'] else 'random'} {'padding-free' if True in free else 'padded'}"
    then = "" if r["group_by_length"] == Config().training.group_by_length else ", the defaults of then"
    return f"{kind} batches{then}"


def speeds(r: dict) -> list[tuple[str, float, float]]:
    """(backend, samples/s on 1 GPU, on 2) in the order they ran."""
    backends = list(dict.fromkeys(x["backend"] for x in r["rows"]))
    return [(b, row(r, backend=b, gpus=1)["samples_s"], row(r, backend=b, gpus=2)["samples_s"]) for b in backends]


def multigpu() -> str:
    r = result("multigpu")
    folders = {x.get("run_folders") for x in r["rows"] if x["gpus"] > 1}
    return (f"{r['rows'][0]['samples']:,} samples, {batches(r)}: "
            + ", ".join(f"{BACKENDS.get(b, b)} {one:.1f} → {two:.1f} samples/s" for b, one, two in speeds(r))
            + f"; {'one run folder' if folders == {1} else f'run folders: {folders}'} written ({run(r)}). The "
            "speed-ups: [Several GPUs](#several-gpus-on-one-machine)")


def several_gpus() -> str:
    r = result("multigpu")
    (first, one, two), *others = speeds(r)
    return (f"Measured with `bench/bench_multigpu.py` ({run(r)}; {batches(r)}): {two / one:.2f}× the samples/s of "
            f"one GPU with {BACKENDS.get(first, first)}"
            + "".join(f", {b2 / b1:.2f}× with {BACKENDS.get(b, b)}" for b, b1, b2 in others) + ".")


def kaggle_install() -> str:
    r = result("kaggle_install")
    original, notebook = row(r, recipe="original"), row(r, recipe="notebook")
    return (f"before training can start **{original['foreground_s'] / 60:.1f} → "
            f"{notebook['foreground_s'] / 60:.1f} min**; llama-cpp-python's compile "
            f"({notebook['background_s'] / 60:.1f} min here, niced, 2 jobs) moves to the background while the GPUs "
            f"train. Kaggle's 4 vCPUs and network were not replayed ({run(r)})")


def t4() -> str:
    r = result("t4-h200")
    verdicts = [f"{' and '.join(names)} {what}" for names, what in (
        ([x["backend"] for x in r["rows"] if x.get("ok")], "passed every check"),
        ([x["backend"] for x in r["rows"] if not x.get("ok")], "FAILED")) if names]
    return (f"{'; '.join(verdicts)} (fp16, a finite and falling loss, peak under 15 GiB, checkpoints, resume, "
            f"export, chat.py; {run(r)}): the table in [Kaggle](#kaggle-free-t4-2)")


def kaggle_t4() -> str:
    r = result("t4-h200")
    lines = ["| backend | precision | steps (resumed from) | loss, first → last 3 steps | peak GiB (cap 15) | "
             "real tok/s | export | checks |", "|---|---|---|---|---:|---:|---|---|"]
    for x in r["rows"]:
        if "failed" in x:
            lines.append(f"| {x['backend']} | failed: {x['failed']} |||||||")
            continue
        export = "; ".join(x["export"]) if isinstance(x["export"], list) else x["export"]
        lines.append(f"| {x['backend']} | {x['precision']} | {x['steps']} ({x['resumed_from']}) | "
                     f"{x['first_loss']:.2f} → {x['last_loss']:.2f} | {x['peak_gib']:.2f} | {x['tok_s'] or 0:,.0f} | "
                     f"{export} | {'pass' if x['ok'] else 'FAIL'} |")
    return "\n".join(lines + ["", f"{r['machine']}; {r['date']}."])


# hive.style metric -> (column, format) in the fidelity tables
STYLE_COLUMNS = {"words_per_reply": ("words", ".1f"), "chars_per_reply": ("chars", ".1f"),
                 "lowercase_start": ("starts lowercase", ".2f"), "punctuation_per_word": ("punct. / word", ".3f"),
                 "emoji_share": ("emoji", ".2f"), "question_share": ("question", ".2f"),
                 "multiline_share": ("several messages", ".2f"), "stop_rate": ("ends by itself", ".2f"),
                 "auc": ("told apart (AUC)", ".2f")}
# bench_quality run -> label in the fidelity tables
FIDELITY_RUNS = {"reply": "reply, shipped sampling", "reply, earlier sampling": "reply, earlier sampling",
                 "reply, earlier sampling without repetition penalty": "reply, earlier sampling without the penalty",
                 "reply, repetition penalty 1.1": "reply, shipped sampling with the penalty 1.1",
                 "reply, no top_p or top_k": "reply, shipped sampling without top_p / top_k",
                 "sliding": "sliding, shipped sampling"}


def style_table(rows: list[dict], label: str, first: str, names: dict | None = None) -> list[str]:
    """A Markdown table of style rows (`first` is the key that names a row)."""
    columns = [k for k in STYLE_COLUMNS if any(k in x for x in rows)]
    lines = [f"| {label} | " + " | ".join(STYLE_COLUMNS[k][0] for k in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for x in rows:
        name = (names or {}).get(x[first], x[first])
        cells = [format(x[k], STYLE_COLUMNS[k][1]) if x.get(k) is not None else "" for k in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def fidelity() -> str:
    r, wide = result("fidelity-cpu"), result("fidelity-sampling-200")
    gen, runs = Config().generation, {x["model"]: x for x in r["rows"]}
    lines = [f"The clone used to write replies half again as long as the person's and to break them into several "
             f"messages less often. The main cause was the sampling, not the training data: the **repetition "
             f"penalty** (1.1) lowers the score of every token already in the conversation, and the chat template "
             f"puts the end-of-turn token and line breaks into every earlier turn, so the penalty makes the model "
             f"less likely to stop and to break a line; **temperature 0.7** then made replies blander and easier to "
             f"tell from the person's. The defaults are now `repetition_penalty: {decimal(gen.repetition_penalty)}` "
             f"(off), `temperature: {decimal(gen.temperature)}`, `top_p: {decimal(gen.top_p)}` (`top_k: {gen.top_k}` "
             f"as before): sampling from the fine-tune's own distribution minus its unreliable tail. They apply to "
             f"evaluate.py, chat.py and the exported Modelfile alike (`training_config.yaml`, `generation:`); the "
             f"Modelfile's PARAMETER lines override Ollama's own defaults (repeat_penalty 1.1).", "",
             f"Measured on the dev sender (`bench/chitchat_exports.py`, 8 % of chats held out, neither model saw "
             f"them), {r['base_model']} fine-tuned for a short budget ({r['budget']}; {run(r)}; "
             f"`{r['command']}`):", "", "| model | NLL / reply token | vs base |", "|---|---:|---:|",
             f"| base | {runs['base']['nll']:.3f} | |"]
    for name in ("reply", "sliding"):
        x = runs[name]
        lines.append(f"| {name} | {x['nll']:.3f} | {-x['nll_reduction']:+.1%} ({x['win_rate']:.0%} of replies more "
                     f"likely) |")
    shown = [runs["me (real)"], runs["base"], *(runs[n] for n in FIDELITY_RUNS if n in runs)]
    lines += ["", *style_table(shown, f"{r['style_contexts']} held-out contexts", "model", FIDELITY_RUNS), "",
              f"{r['style_contexts']} contexts leave a share uncertain by about ±0.07 and the AUC by about ±0.06, so "
              f"the same reply model also answered {wide['contexts']} held-out contexts under each setting "
              f"(evaluate.py's `generate_replies`, seed {gen.seed}):", "",
              *style_table(wide["rows"], f"{wide['contexts']} held-out contexts", "sampling")]
    return "\n".join(lines)


def fidelity_causes() -> str:
    r, wide, tf, probes = (result(n) for n in ("fidelity-cpu", "fidelity-sampling-200", "sampling-cpu",
                                               "fidelity-probes"))
    t = Config().training
    lr = f"{t.learning_rate:.0e}".replace("e-0", "e-")
    w = {x["sampling"].split(":")[0]: x for x in wide["rows"]}
    new, old = w["shipped"], w["earlier"]
    cool = w["penalty 1.0, T 0.7, top_p 0.9"]
    hot = w["penalty 1.1, T 1.0, top_p 0.95"]
    own = next(x for x in tf["rows"] if x["sampling"] == "the model's own distribution")
    alone = next(x for x in tf["rows"] if x["sampling"] == "penalty 1.1 alone")
    pure = next(x for x in r["rows"] if x["model"] == "reply, no top_p or top_k")
    curve = " → ".join(f"{loss:.2f}" for _, loss in r["curves"]["reply"])
    steps = " / ".join(str(int(step)) for step, _ in r["curves"]["reply"])
    context = [x for x in probes["rows"] if x["probe"] == "context"]
    bursts = {x["merge_gap_minutes"]: x for x in probes["rows"] if x["probe"] == "bursts"}
    (gap, a), (gap2, b) = sorted(bursts.items(), reverse=True)
    return "\n".join([
        f"- **Repetition penalty** (the main cause): replies {old['words_per_reply'] / cool['words_per_reply']:.1f} to "
        f"{hot['words_per_reply'] / new['words_per_reply']:.1f} times as long ({old['words_per_reply']:.1f} / "
        f"{hot['words_per_reply']:.1f} words against {cool['words_per_reply']:.1f} / {new['words_per_reply']:.1f} "
        f"without it, at temperature 0.7 / 1), and half as many replies of several messages "
        f"({old['multiline_share']:.2f} / {hot['multiline_share']:.2f} against {cool['multiline_share']:.2f} / "
        f"{new['multiline_share']:.2f}). Teacher-forced on {tf['replies']} held-out replies (`{tf['command']}`), the "
        f"penalty alone lowers the probability of the end-of-turn token where the real reply ends from "
        f"{own['end']:.2f} to {alone['end']:.2f}, inside a reply (a premature stop) from {own['inside']:.3f} to "
        f"{alone['inside']:.3f}, and of a line break where the person broke the line from {own['break']:.2f} to "
        f"{alone['break']:.2f}. In this short run {min(x['stop_rate'] for x in wide['rows'][1:]):.0%} or more of the "
        f"replies still ended by themselves with every setting.",
        f"- **Temperature / top_p**: at 0.7 / 0.9 without the penalty the length is right, but the replies are "
        f"blander: fewer questions ({cool['question_share']:.2f} against {w['me (real)']['question_share']:.2f}), "
        f"more capitalised starts ({cool['lowercase_start']:.2f} starting lowercase against "
        f"{w['me (real)']['lowercase_start']:.2f}), and the classifier tells them from the person's more easily (AUC "
        f"{cool['auc']:.2f} against {new['auc']:.2f} with the shipped sampling). Sampling without top_p or top_k "
        f"({r['style_contexts']} contexts: {pure['words_per_reply']:.1f} words, {pure['multiline_share']:.2f} several "
        f"messages, AUC {pure['auc']:.2f}) is within the noise of top_p 0.95; the nucleus stays as a guard against a "
        f"small model's unreliable tail, which this run did not show to matter.",
        f"- **Under-training**: the held-out loss of the reply run was still falling when its budget ended ({curve} "
        f"at steps {steps}). Whether the shipped recipe ({t.num_train_epochs:g} epochs, batch "
        f"{t.per_device_train_batch_size}, learning rate {lr}) trains too little needs the GPU run "
        f"below; the training defaults are unchanged.",
        f"- **Bursts**: my messages closer than `convert.merge_gap_minutes` form one reply. Over this sender's chats "
        f"{gap} and {gap2} minutes give {a['turns']:,} and {b['turns']:,} turns, and "
        f"{a['multiline_share']:.1%} and {b['multiline_share']:.1%} of the targets are several messages: the "
        f"joining is not why the clone sends fewer of them. What remains is a model that gives a line break only "
        f"{own['break']:.2f} probability where the "
        f"person breaks the line (teacher-forced, no penalty); more training is the candidate, not measured here.",
        "- **Context**: held-out replies with 7 or more earlier turns, given only the last "
        + " / ".join(str(x["turns"]) for x in context) + " turns: NLL base "
        + " / ".join(f"{x['base']:.2f}" for x in context) + ", fine-tune "
        + " / ".join(f"{x['tuned']:.2f}" for x in context) + ". Each earlier turn helps both models, so "
        f"`convert.max_context_turns: {Config().convert.max_context_turns}` stays (measured at evaluation, not by "
        f"retraining).",
    ])


def fidelity_goals() -> str:
    r = result("fidelity-cpu")
    met = [g["goal"] for g in r["goals"] if g["met"]]
    missed = [g["goal"] for g in r["goals"] if not g["met"]]
    return (f"The goals for the reply run, as bench_quality.py printed them ({r['style_contexts']} contexts). Met: "
            + "; ".join(met) + ". Not met: " + "; ".join(missed) + ".")


def sampling() -> str:
    r = result("sampling-cpu")
    m = {x["sampling"].split(" (")[0]: x for x in r["rows"]}
    own, shipped, alone = m["the model's own distribution"], m["shipped"], m["penalty 1.1 alone"]
    return (f"the fidelity run's reply model ({r['replies']} held-out replies): end-of-turn where the reply ends "
            f"{own['end']:.2f} under the model's own distribution, {shipped['end']:.2f} with the shipped sampling, "
            f"{alone['end']:.2f} with the repetition penalty 1.1 alone; a line break where the person broke the line "
            f"{own['break']:.2f} / {shipped['break']:.2f} / {alone['break']:.2f} ({run(r)})")


BLOCKS = {
    "extract": extract, "fuzz_extract": fuzz_extract, "redact": redact, "quality": quality, "train": train,
    "packing": packing, "demo_reply": demo_reply, "multigpu": multigpu, "kaggle_install": kaggle_install, "t4": t4,
    "training-speed": training_speed, "training-speed-notes": training_speed_notes, "several-gpus": several_gpus,
    "kaggle-t4": kaggle_t4, "privacy": privacy, "sampling": sampling, "fidelity": fidelity,
    "fidelity-causes": fidelity_causes, "fidelity-goals": fidelity_goals,
}


def wrap(line: str) -> str:
    """A line of prose at the README's width, never broken before a word that would start a list, quote, heading or
    table row at the start of a line; a table row as it is."""
    if line.startswith("|"):
        return line
    lines, current = [], ""
    for word in line.split(" "):
        if current and len(current) + 1 + len(word) > WIDTH and not MARKUP.match(word):
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return "\n".join(lines + [current])


def render(text: str) -> tuple[str, list[str]]:
    """`text` with every block rendered afresh, and the names of the blocks that changed."""
    stale = []

    def one(match: re.Match) -> str:
        start, name, inner, end = match.groups()
        if name not in BLOCKS:
            raise SystemExit(f"readme_figures: README.md has a block {name!r} that nothing renders "
                             f"(known: {', '.join(BLOCKS)})")
        body = BLOCKS[name]()
        if inner.startswith("\n"):  # blank lines around it: a table must not run on into the closing comment
            body = "\n\n" + "\n".join(wrap(line) for line in body.split("\n")) + "\n\n"
        else:
            assert "\n" not in body, f"block {name} is inside one line of README.md but renders several"
        if body != inner:
            stale.append(name)
        return start + body + end

    return BLOCK.sub(one, text), stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new, stale = render(text)
    missing = [name for name in BLOCKS if f"<!-- figures: {name} -->" not in text]
    if missing:
        print(f"README.md lacks the figure blocks {', '.join(missing)}: add `<!-- figures: NAME --><!-- /figures -->`"
              " where each belongs")
        return 1
    if args.check:
        if stale:
            print(f"README.md's figure blocks {', '.join(stale)} differ from bench/results/*.json: run `make figures`")
            return 1
        print(f"README.md: all {len(BLOCKS)} figure blocks match bench/results/*.json")
        return 0
    if stale:
        with atomic_write(README) as f:
            f.write(new)
    print(f"README.md: {len(stale)} of {len(BLOCKS)} figure blocks rewritten{': ' + ', '.join(stale) if stale else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
