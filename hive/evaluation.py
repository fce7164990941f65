"""Is the fine-tune worth exporting? It is compared with its own base model on held-out conversations:

- likelihood: the average negative log-likelihood per token of my real reply (the final assistant turn) given the
  conversation before it, for the base model and the fine-tune, on the same tokens of the same chat template;
- style: replies generated to held-out contexts against my real replies (length, case, punctuation, emoji, ...);
- examples: a few contexts with my real reply, the base model's and the clone's, side by side.

evaluate_run() writes outputs/<run>/eval_report.md, eval.json (read by export_model.py) and PNG charts.
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from hive import conversations, generation, models, runs, templates, training
from hive.config import Config
from hive.errors import HiveError
from hive.fileio import atomic_write
from hive.style import EXPLANATION, STYLE_METRICS, indistinguishability, stop_rate, style_metrics, words


@dataclass
class Likelihood:
    """Per-sample summed NLL (nats) and token counts of the real replies, for one model."""

    nll_sums: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    @property
    def nll(self) -> float:
        """Average NLL per reply token over all held-out replies (token-weighted)."""
        return sum(self.nll_sums) / max(sum(self.tokens), 1)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll)


def spread(items: list, n: int | None) -> list:
    """n items evenly spaced over `items`, in order: consecutive samples share a session (and most of their context),
    so the first n would cover only a few conversations."""
    if n is None or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


# ---------------------------------------------------------------- models


def load_run_model(run: runs.Run):
    """(PeftModel, tokenizer) of a train.py run: its base model with the adapter, and the tokenizer saved beside the
    adapter, whose chat template is the one the run trained with. A run trained in 4 bit (CUDA) is scored in 4 bit,
    loaded exactly as training loaded it."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    device, dtype = models.inference_settings()
    kwargs: dict = {"dtype": dtype}
    if device == "cuda":
        kwargs["device_map"] = {"": 0}
        if run.record.load_in_4bit:
            kwargs["quantization_config"] = models.quantization_config(dtype)
    tokenizer = AutoTokenizer.from_pretrained(run.adapter)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = PeftModel.from_pretrained(models.load_model(run.base_model, **kwargs), run.adapter)
    model.eval()
    return model, tokenizer


def encode_sample(tokenizer, messages: list[dict], max_len: int, eot: str) -> tuple[list[int], int] | None:
    """(token ids, number of reply tokens at the end), tokenized exactly as train.py does: the prompt, then my reply
    and the template's end-of-turn marker, oldest context turns dropped to fit max_len (None if nothing fits)."""
    row = training.encode(tokenizer, messages, max_len, assistant_only=True, eot=eot)
    if row is None:
        return None
    return row["input_ids"], sum(1 for label in row["labels"] if label != -100)


def left_pad(rows: list[list[int]], pad_id: int):
    """input_ids, attention_mask and position_ids of left-padded rows (replies and generations end aligned)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def reply_nll(model, encoded: list[tuple[list[int], int]], pad_id: int, batch_size: int, desc: str) -> Likelihood:
    """Summed NLL of each sample's reply tokens. Left padding puts every reply at the end of its row, so only the
    last (longest reply + 1) positions need logits: the full logits of a large vocabulary would not fit."""
    import torch
    from tqdm import tqdm

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    sums, counts = [0.0] * len(encoded), [0] * len(encoded)
    device = next(model.parameters()).device
    with torch.no_grad(), tqdm(total=len(order), desc=desc, unit="sample") as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            ids, mask, pos = (t.to(device) for t in left_pad([encoded[i][0] for i in batch], pad_id))
            keep = max(encoded[i][1] for i in batch) + 1
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = ids[:, -(keep - 1):]
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(batch):
                n = encoded[i][1]
                sums[i] = -token_lp[row, -n:].sum().item()
                counts[i] = n
            bar.update(len(batch))
    return Likelihood(sums, counts)


def generate_replies(model, tokenizer, contexts: list[list[dict]], cfg: Config, max_len: int,
                     desc: str) -> tuple[list[str], list[bool]]:
    """One reply per context (a sample without its last turn) with the `generation` settings, prompt and reply fitted
    into `max_len` as chat.py fits them, seeded so reruns give the same text; and for each whether it ended by
    itself (a stop token or the end-of-turn text) rather than at its token budget."""
    import torch
    from tqdm import tqdm
    from transformers import set_seed

    gen = cfg.generation
    set_seed(gen.seed)
    eot = templates.end_of_turn(tokenizer)
    reply_tokens, _ = generation.reply_budget(max_len, gen.max_new_tokens)

    def prompt_ids(messages: list[dict]) -> list[int]:
        text = templates.render(tokenizer, messages, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    fitted = [generation.fit_prompt(c, lambda m: len(prompt_ids(m)), max_len, reply_tokens) for c in contexts]
    prompts = [(prompt_ids(messages), budget) for messages, budget in fitted]
    device = next(model.parameters()).device
    replies, ended = [], []
    for start in tqdm(range(0, len(prompts), cfg.evaluate.batch_size), desc=desc, unit="batch"):
        batch = prompts[start:start + cfg.evaluate.batch_size]
        ids, mask, _ = (t.to(device) for t in left_pad([p for p, _ in batch], tokenizer.pad_token_id))
        kwargs = generation.generate_kwargs(model, tokenizer, gen, min(b for _, b in batch))
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        new = out[:, ids.shape[1]:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        replies += [t.split(eot)[0].strip() for t in texts]
        stops = set(kwargs["eos_token_id"])
        ended += [bool(stops & set(row)) or eot in t for row, t in zip(new.tolist(), texts)]
    return replies, ended


# ---------------------------------------------------------------- the evaluation


@dataclass
class EvalResult:
    run_dir: Path
    data: Path
    base_model: str
    base: Likelihood
    tuned: Likelihood
    style: dict[str, dict[str, float]]  # "real" | "base" | "tuned" -> metrics
    examples: list[dict]
    replies: dict[str, list[str]]  # "real" | "base" | "tuned" -> the style comparison's replies, in context order
    seconds: float
    ended: dict[str, list[bool]]  # "base" | "tuned" -> whether each generated reply ended before its token budget
    auc: dict[str, float | None]  # "base" | "tuned" -> indistinguishability from my real replies (ROC AUC)

    @property
    def improved(self) -> bool:
        return self.tuned.nll < self.base.nll

    @property
    def reduction(self) -> float:
        """Relative NLL reduction of the fine-tune over the base (0.1 = 10 % lower)."""
        return 1 - self.tuned.nll / self.base.nll

    @property
    def win_rate(self) -> float:
        """Share of held-out replies the fine-tune finds more likely than the base does."""
        return sum(t < b for t, b in zip(self.tuned.nll_sums, self.base.nll_sums)) / len(self.base.nll_sums)

    def closer_to_real(self) -> int:
        """On how many style metrics the fine-tune is closer to my real replies than the base is."""
        real, base, tuned = self.style["real"], self.style["base"], self.style["tuned"]
        return sum(abs(tuned[k] - real[k]) < abs(base[k] - real[k]) for k in real)

    def stop_rates(self) -> dict[str, float]:
        return {name: stop_rate(flags) for name, flags in self.ended.items()}

    def record(self) -> runs.EvalRecord:
        return runs.EvalRecord(
            run=str(self.run_dir), data=str(self.data), base_model=self.base_model,
            samples=len(self.base.tokens), reply_tokens=sum(self.base.tokens),
            base_nll=self.base.nll, tuned_nll=self.tuned.nll, improved=self.improved,
            base_perplexity=self.base.perplexity, tuned_perplexity=self.tuned.perplexity,
            nll_reduction=self.reduction, win_rate=self.win_rate,
            style_samples=len(self.replies["real"]), style=self.style, style_closer_to_real=self.closer_to_real(),
            examples=[runs.Example(**e) for e in self.examples], replies=self.replies, seconds=self.seconds,
            stop_rate=self.stop_rates(), auc=self.auc, ended=self.ended,
        )


def evaluate_run(run: runs.Run, data: Path, cfg: Config) -> EvalResult:
    """Score, generate, and write eval.json, eval_report.md and the charts into the run folder."""
    started = time.time()
    samples = spread(conversations.read(data), cfg.evaluate.max_samples)
    max_len = runs.max_seq_length(run.record.max_seq_length, cfg)
    model, tokenizer = load_run_model(run)
    eot = templates.end_of_turn(tokenizer)
    encoded = [e for e in (encode_sample(tokenizer, s, max_len, eot) for s in samples) if e is not None]
    if not encoded:
        raise HiveError(f"no sample of {data} fits the run's model.max_seq_length={max_len}")
    batch = cfg.evaluate.batch_size
    contexts = spread(samples, cfg.evaluate.style_samples)
    real = [s[-1]["content"] for s in contexts]
    # Merged into the weights, the adapter costs nothing per step (on CPU the separate LoRA matmuls of every layer
    # double the time of small batches); a 4-bit base cannot take the merge losslessly, so it keeps the adapter apart.
    merge = not run.record.load_in_4bit
    if merge:
        model.merge_adapter()
    tuned = reply_nll(model, encoded, tokenizer.pad_token_id, batch, "likelihood, fine-tune")
    generated, ended = {}, {}
    generated["tuned"], ended["tuned"] = generate_replies(model, tokenizer, contexts, cfg, max_len,
                                                          "replies, fine-tune")
    if merge:
        model.unmerge_adapter()
    with model.disable_adapter():
        base = reply_nll(model, encoded, tokenizer.pad_token_id, batch, "likelihood, base")
        generated["base"], ended["base"] = generate_replies(model, tokenizer, contexts, cfg, max_len, "replies, base")
    vocabulary = {w for r in real for w in words(r)}
    replies = {"real": real, "base": generated["base"], "tuned": generated["tuned"]}
    metrics = {name: style_metrics(texts, vocabulary) for name, texts in replies.items()}
    side_by_side = list(zip(contexts, real, generated["base"], generated["tuned"]))
    examples = [{"context": c[:-1], "real": r, "base": b, "tuned": t}
                for c, r, b, t in spread(side_by_side, cfg.evaluate.examples)]
    auc = {name: indistinguishability(real, generated[name]) for name in ("base", "tuned")}
    result = EvalResult(run.folder, data, run.base_model, base, tuned, metrics, examples, replies,
                        time.time() - started, ended, auc)
    write_outputs(result, cfg)
    return result


# ---------------------------------------------------------------- the report


def likelihood_table(result: EvalResult) -> str:
    """The key table (Markdown, also printed by evaluate.py)."""
    rows = [
        "| model | NLL / reply token | perplexity |",
        "|---|---:|---:|",
        f"| base ({result.base_model}) | {result.base.nll:.3f} | {result.base.perplexity:.1f} |",
        f"| fine-tune ({result.run_dir.name}) | {result.tuned.nll:.3f} | {result.tuned.perplexity:.1f} |",
    ]
    return "\n".join(rows)


def style_table(result: EvalResult) -> str:
    rows = ["| style metric | me (real) | base | fine-tune |", "|---|---:|---:|---:|"]
    real, base, tuned = result.style["real"], result.style["base"], result.style["tuned"]
    for key, (label, _) in STYLE_METRICS.items():
        mark = " ✓" if abs(tuned[key] - real[key]) < abs(base[key] - real[key]) else ""
        rows.append(f"| {label} | {real[key]:.2f} | {base[key]:.2f} | {tuned[key]:.2f}{mark} |")
    stop, auc = result.stop_rates(), {k: "-" if v is None else f"{v:.2f}" for k, v in result.auc.items()}
    rows.append(f"| ends by itself (stop rate) | 1.00 | {stop['base']:.2f} | {stop['tuned']:.2f} |")
    rows.append(f"| told apart from me (AUC) | 0.50 | {auc['base']} | {auc['tuned']} |")
    return "\n".join(rows)


def verdict(result: EvalResult) -> str:
    if result.improved:
        return (f"The fine-tune beats the base on held-out replies: NLL {result.reduction:.1%} lower "
                f"(perplexity {result.base.perplexity:.1f} -> {result.tuned.perplexity:.1f}); it finds "
                f"{result.win_rate:.0%} of my real replies more likely than the base does.")
    return (f"The fine-tune is NOT better than the base on held-out replies (NLL {result.tuned.nll:.3f} vs "
            f"{result.base.nll:.3f}); train longer or on more data, or check the data with validate_dataset.py.")


def _quote(text: str) -> str:
    return "<br>".join(line.replace("|", "\\|") for line in text.strip().splitlines()) or "(empty)"


def examples_markdown(examples: list[dict], context_turns: int = 4) -> str:
    parts = []
    for n, ex in enumerate(examples, 1):
        lines = [f"### Example {n}", ""]
        for turn in ex["context"][-context_turns:]:
            if turn["role"] != "system":
                who = "me" if turn["role"] == "assistant" else "them"
                lines.append(f"> **{who}:** {_quote(turn['content'])}  ")
        lines += ["", "| | reply |", "|---|---|", f"| me (real) | {_quote(ex['real'])} |",
                  f"| base | {_quote(ex['base'])} |", f"| fine-tune | {_quote(ex['tuned'])} |", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def write_charts(result: EvalResult) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"real": "#4c72b0", "base": "#999999", "tuned": "#dd8452"}
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    values = [result.base.nll, result.tuned.nll]
    bars = ax.bar(["base", "fine-tune"], values, color=[colors["base"], colors["tuned"]])
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values])
    ax.set_ylabel("NLL per reply token (nats)")
    ax.set_title("held-out reply likelihood (lower is better)", fontsize=9)
    fig.tight_layout()
    fig.savefig(result.run_dir / "eval_nll.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(2, 4, figsize=(11, 4.8))
    for ax, (key, (label, _)) in zip(axes.flat, STYLE_METRICS.items()):
        ax.bar(["me", "base", "tuned"], [result.style[m][key] for m in ("real", "base", "tuned")],
               color=[colors[m] for m in ("real", "base", "tuned")])
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle("reply style: my real replies vs generated ones (closer to 'me' is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(result.run_dir / "eval_style.png", dpi=120)
    plt.close(fig)
    return ["eval_nll.png", "eval_style.png"]


def write_outputs(result: EvalResult, cfg: Config) -> None:
    """eval.json, the charts and eval_report.md in the run folder."""
    result.record().save(result.run_dir)
    charts = write_charts(result)
    gen = cfg.generation
    definitions = "\n".join([*(f"- *{label}*: {how}" for label, how in STYLE_METRICS.values()), f"- {EXPLANATION}"])
    report = f"""# Evaluation of {result.run_dir.name}

Base model `{result.base_model}`; held-out data `{result.data}`: {len(result.base.tokens):,} replies,
{sum(result.base.tokens):,} reply tokens. Both models are scored on the same tokens with the run's chat template.

## Held-out reply likelihood

{likelihood_table(result)}

{verdict(result)}

![likelihood]({charts[0]})

## Style of generated replies

{len(result.replies["real"])} held-out contexts; sampling: temperature {gen.temperature}, top_p {gen.top_p},
top_k {gen.top_k}, repetition_penalty {gen.repetition_penalty}, max_new_tokens {gen.max_new_tokens}, seed {gen.seed}.
✓ marks where the fine-tune is closer to my real replies than the base is
({result.closer_to_real()} of {len(STYLE_METRICS)} metrics).

{style_table(result)}

{definitions}

![style]({charts[1]})

## Examples

{examples_markdown(result.examples)}
"""
    with atomic_write(result.run_dir / "eval_report.md") as f:
        f.write(report)
