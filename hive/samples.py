"""Cleaned chat messages (dataset/cleaned/*.jsonl) -> training conversations in the Hugging Face `messages` format.

Mode `reply`: other people's messages are `user` turns, mine are `assistant` turns.
  * A chat is cut into sessions at silences longer than convert.session_gap_hours; samples never cross sessions.
  * A turn is a run of consecutive messages from one side (me, or everybody else) each within
    convert.merge_gap_minutes of the previous one, joined by newlines. So two turns of the same role follow each
    other only after such a pause. In a group chat (more than one other sender) the messages of different people
    in one user turn are kept apart as "Name: text" lines (one prefix per change of speaker): one user turn rather
    than consecutive user turns, because some chat templates insist that roles alternate.
  * Every turn of mine that holds text is a target: the sample is that reply plus up to convert.max_context_turns
    earlier turns of the session, starting at a user turn. Media, deleted, view-once, poll, location, contact and
    call messages are never targets; in context they become PLACEHOLDERS (or vanish: non_text_context: drop).
    System events (no sender) are always left out.
Mode `sliding`: the original Hive pairing. Per chat, my kept messages (kind text/edited, after the original
  extract.py filters) pair up as (message i -> user, message i+1 -> assistant); no merging, dedupe or length limits.

Every sample fits model.max_seq_length including the chat template's overhead: the oldest context turns go first,
the reply is never cut (the sample is dropped instead). Samples are split into train/validation by session
(sliding: by chat), so no conversation feeds both files. Same input + config = byte-identical output.
"""

import hashlib
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from hive import conversations, fileio, paths
from hive.config import Config
from hive.errors import HiveError, missing_input
from hive.fileio import write_jsonl
from hive.privacy import strip_urls
from hive.tokens import TokenCounter

TEXT_KINDS = ("text", "edited")
PLACEHOLDERS = {
    "media": "<media>", "deleted": "<deleted>", "view_once": "<view once>", "poll": "<poll>",
    "location": "<location>", "contact": "<contact>", "call": "<call>",
}
KINDS = frozenset((*TEXT_KINDS, *PLACEHOLDERS, "system"))
FIELDS = ("chat", "timestamp", "sender", "is_me", "kind", "text")


@dataclass
class Message:
    time: datetime
    sender: str | None
    is_me: bool
    kind: str
    text: str


@dataclass
class Chat:
    name: str  # the file name without .jsonl: unique, unlike the `chat` field
    messages: list[Message]

    @property
    def is_group(self) -> bool:
        return len({m.sender for m in self.messages if not m.is_me and m.sender is not None}) > 1


@dataclass
class Turn:
    me: bool
    lines: list[str] = field(default_factory=list)  # what the turn shows as context
    reply: list[str] = field(default_factory=list)  # my text messages only: the target when this turn is one
    speaker: str | None = None  # last "Name: " prefix written (group chats)

    @property
    def content(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Candidate:
    unit: tuple  # split unit: (chat, session index) in reply mode, (chat,) in sliding mode
    context: list[tuple[str, str, int]]  # (role, content, tokens), oldest first
    reply: str
    reply_tokens: int


@dataclass
class Result:
    train: list[dict]
    validation: list[dict]
    drops: Counter
    info: dict


def load_chats(folder: Path) -> list[Chat]:
    """Every <chat>.jsonl in `folder`, by file name; an error names the file and line of a malformed message."""
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise missing_input(folder, "extract.py", "cleaned chats (*.jsonl)")
    chats = []
    for file in tqdm(files, desc="reading", unit="chat", disable=None, leave=False):
        messages = []
        with open(file, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    messages.append(_message(line, f"{file}:{number}"))
        chats.append(Chat(file.stem, messages))
    if not any(c.messages for c in chats):
        raise HiveError(f"{folder} holds no messages; run extract.py on your exports first")
    return chats


def _message(line: str, where: str) -> Message:
    try:
        row = json.loads(line)
        missing = [k for k in FIELDS if k not in row]
        if missing or row["kind"] not in KINDS:
            raise ValueError(f"missing {missing}" if missing else f"unknown kind {row['kind']!r}")
        return Message(datetime.fromisoformat(row["timestamp"]), row["sender"], bool(row["is_me"]), row["kind"],
                       str(row["text"]))
    except (ValueError, TypeError, AttributeError) as e:
        raise HiveError(f"{where}: not a cleaned message ({e}); re-run extract.py to rewrite dataset/cleaned") from None


def owner_name(chats: list[Chat]) -> str | None:
    """The most frequent sender of my messages (ties: alphabetical), or None when no message is mine."""
    counts = Counter(m.sender for c in chats for m in c.messages if m.is_me and m.sender)
    return min(counts, key=lambda s: (-counts[s], s)) if counts else None


def _context_line(m: Message, mode: str) -> str | None:
    """How a message reads as context: its text, a placeholder (a media caption kept after it), or None."""
    if m.kind in TEXT_KINDS:
        return m.text.strip() or None
    if mode == "drop":
        return None
    caption = m.text.split("\n", 1)[1].strip() if m.kind == "media" and "\n" in m.text else ""
    return f"{PLACEHOLDERS[m.kind]} {caption}".rstrip()


def sessions(chat: Chat, cfg: Config, info: Counter) -> list[list[Turn]]:
    """The chat as sessions of turns (reply mode)."""
    c = cfg.convert
    merge, silence = timedelta(minutes=c.merge_gap_minutes), timedelta(hours=c.session_gap_hours)
    group, result, last = chat.is_group, [], None
    for m in chat.messages:
        line = None if m.kind == "system" or m.sender is None else _context_line(m, c.non_text_context)
        if line is None:
            info["messages left out (system, empty, non-text with drop)"] += 1
            continue
        gap = m.time - last if last else None
        last = m.time
        if gap is None or gap > silence:
            result.append([])
        turns = result[-1]
        if not turns or turns[-1].me != m.is_me or gap > merge:
            turns.append(Turn(m.is_me))
        turn = turns[-1]
        if group and not m.is_me and turn.speaker != m.sender:
            turn.lines.append(f"{m.sender}: {line}")
            turn.speaker = m.sender
        else:
            turn.lines.append(line)
        if m.is_me and m.kind in TEXT_KINDS:
            turn.reply.append(line)
    return result


def _reply_candidates(chats: list[Chat], cfg: Config, counter: TokenCounter, drops: Counter, info: Counter):
    """A Candidate for every turn of mine that can be a target (the others are counted in `drops`); every turn's
    tokens are counted once, in one batch, and shared by all the windows it appears in."""
    all_sessions = []
    for chat in tqdm(chats, desc="sessions", unit="chat", disable=None, leave=False):
        for index, turns in enumerate(sessions(chat, cfg, info)):
            all_sessions.append(((chat.name, index), turns))
    turns = [t for _, ts in all_sessions for t in ts]
    info["sessions"], info["turns"] = len(all_sessions), len(turns)
    counts = iter(counter.count_texts([t.content for t in turns] + ["\n".join(t.reply) for t in turns if t.me]))
    content_tokens = {id(t): next(counts) for t in turns}
    reply_tokens = {id(t): next(counts) for t in turns if t.me}
    for unit, session in all_sessions:
        for k, turn in enumerate(session):
            if not turn.me:
                continue
            reply = "\n".join(turn.reply)
            reason = ("reply_non_text" if not reply else "reply_too_short" if len(reply) < cfg.convert.min_reply_chars
                      else "reply_too_long" if len(reply) > cfg.convert.max_reply_chars else None)
            if reason:
                drops[reason] += 1
                continue
            window = session[max(0, k - cfg.convert.max_context_turns):k]
            context = [("assistant" if t.me else "user", t.content, content_tokens[id(t)]) for t in window]
            yield Candidate(unit, context, reply, reply_tokens[id(turn)])


def _kept_original(chat: Chat, info: Counter) -> list[str]:
    """My messages as the original extract.py kept them (filters in its order), for sliding mode."""
    kept = []
    for m in chat.messages:
        if not m.is_me:
            continue
        text = m.text.strip()
        if m.kind not in TEXT_KINDS:
            info["my messages filtered: not text"] += 1
        elif not text:
            info["my messages filtered: empty"] += 1
        elif text in ("You deleted this message", "<Media omitted>") or "deleted this message" in text.lower() \
                or text.startswith("<Media omitted>"):
            info["my messages filtered: deleted/media text"] += 1
        elif not (without_urls := strip_urls(text).strip()):    # the original deleted URLs (also redaction's <URL>)
            info["my messages filtered: only a URL"] += 1
        else:
            kept.append(without_urls)
    return kept


def _sliding_candidates(chats: list[Chat], counter: TokenCounter, info: Counter):
    """A Candidate for every pair of consecutive kept messages of mine within a chat."""
    per_chat = [(chat.name, _kept_original(chat, info)) for chat in chats]
    counts = iter(counter.count_texts([t for _, kept in per_chat for t in kept]))
    for name, kept in per_chat:
        tokens = [next(counts) for _ in kept]
        for i in range(len(kept) - 1):
            yield Candidate((name,), [("user", kept[i], tokens[i])], kept[i + 1], tokens[i + 1])


def _fit(cand: Candidate, budget: int, per_turn: int, max_turns: int, drops: Counter, info: Counter) -> list | None:
    """The context turns that fit `budget` tokens with the reply (conversations.fit, on the per-turn estimates);
    None = dropped."""
    if cand.reply_tokens + per_turn > budget:
        drops["reply_over_max_seq_length"] += 1
        return None
    turns = [{"role": r, "content": c, "tokens": n} for r, c, n in cand.context[-max_turns:]]
    turns.append({"role": "assistant", "content": cand.reply, "tokens": cand.reply_tokens})
    fitted = conversations.fit(turns, lambda ms: sum(m["tokens"] + per_turn for m in ms), budget, keep=2)
    if fitted is None:
        fits = any(m["role"] == "user" for m in turns[:-1])
        drops["context_over_max_seq_length" if fits else "no_context"] += 1
        return None
    if len(fitted) < len(conversations.fit(turns, lambda ms: 0, 0, keep=2)):
        info["samples whose context was trimmed to fit"] += 1
    return [(m["role"], m["content"]) for m in fitted[:-1]]


def build(chats: list[Chat], cfg: Config, counter: TokenCounter) -> Result:
    """Samples from the chats, fitted to model.max_seq_length, deduplicated and split (see the module docstring)."""
    c, drops, info = cfg.convert, Counter(), Counter()
    owner = owner_name(chats)
    if owner is None:
        raise HiveError("no cleaned message is marked as yours (is_me); set extract.me to your name "
                        "and run extract.py again")
    system = c.system_prompt.replace("{me}", owner) if c.system_prompt else None
    head = [{"role": "system", "content": system}] if system else []
    fixed, per_turn = counter.overheads(system)
    budget = cfg.model.max_seq_length - fixed
    if c.mode == "reply":
        candidates, max_turns = _reply_candidates(chats, cfg, counter, drops, info), c.max_context_turns
    else:
        candidates, max_turns = _sliding_candidates(chats, counter, info), 1
    units, samples = [], []
    for cand in candidates:
        chosen = _fit(cand, budget, per_turn, max_turns, drops, info)
        if chosen is not None:
            units.append(cand.unit)
            samples.append(head + [{"role": r, "content": t} for r, t in chosen]
                           + [{"role": "assistant", "content": cand.reply}])
    units, samples, tokens = _confirm_lengths(units, samples, cfg.model.max_seq_length, counter, drops)
    if c.dedupe and c.mode == "reply":
        units, samples, tokens = _dedupe(units, samples, tokens, drops)
    held_out = _validation_units(units, c.validation_fraction, c.seed)
    train = [{"messages": s} for u, s in zip(units, samples) if u not in held_out]
    validation = [{"messages": s} for u, s in zip(units, samples) if u in held_out]
    turns = [len(s) - len(head) for s in samples]
    summary = {
        "owner": owner, "chats": len(chats), "group chats": sum(ch.is_group for ch in chats),
        "messages": sum(len(ch.messages) for ch in chats),
        "my messages": sum(m.is_me for ch in chats for m in ch.messages),
        **({"sessions": info.pop("sessions"), "turns": info.pop("turns")} if c.mode == "reply" else {}),
        f"{'sessions' if c.mode == 'reply' else 'chats'} with samples (train/validation)":
            f"{len(set(units)) - len(held_out):,}/{len(held_out):,}",
        "turns per sample": _spread(turns), "tokens per sample": _spread(tokens), **info,
    }
    return Result(train, validation, drops, summary)


def _confirm_lengths(units, samples, limit: int, counter: TokenCounter, drops: Counter):
    """Render every sample with the chat template and count it exactly; the rare one that the per-turn sums
    underestimated loses its oldest context turn until it fits."""
    tokens = counter.count_conversations(samples, desc="counting tokens")
    while True:
        over = [i for i, n in enumerate(tokens) if n > limit]
        if not over:
            return units, samples, tokens
        for i in over:
            samples[i] = conversations.drop_oldest(samples[i], keep=2)
        fresh = iter(counter.count_conversations([samples[i] for i in over if samples[i] is not None]))
        for i in over:
            tokens[i] = next(fresh) if samples[i] is not None else None
        dropped = sum(samples[i] is None for i in over)
        drops["context_over_max_seq_length"] += dropped
        if dropped:
            keep = [i for i, s in enumerate(samples) if s is not None]
            units, samples, tokens = [units[i] for i in keep], [samples[i] for i in keep], [tokens[i] for i in keep]


def _dedupe(units, samples, tokens, drops: Counter):
    seen, keep = set(), []
    for i, sample in enumerate(samples):
        key = json.dumps(sample, ensure_ascii=False)
        if key in seen:
            drops["duplicate"] += 1
        else:
            seen.add(key)
            keep.append(i)
    return [units[i] for i in keep], [samples[i] for i in keep], [tokens[i] for i in keep]


def _validation_units(units: list[tuple], fraction: float, seed: int) -> frozenset:
    """round(fraction x units) units, chosen by a seeded hash of their names (independent of input order); at least
    one when fraction > 0, and never all of them."""
    distinct = sorted(set(units))
    n = min(max(round(fraction * len(distinct)), 1 if fraction > 0 else 0), max(len(distinct) - 1, 0))
    ranked = sorted(distinct, key=lambda u: hashlib.sha256(json.dumps([seed, *u]).encode()).hexdigest())
    return frozenset(ranked[:n])


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    return f"mean {statistics.fmean(values):.1f}, median {statistics.median(values):g}, max {max(values)}"


def convert(cfg: Config, chats: list[Chat], output: Path, counter: TokenCounter) -> Result:
    """The chats (load_chats) -> the training file `output` and its validation file; returns the samples and counts.
    When no training sample can be built, nothing is written: a good training file from an earlier run stays."""
    result = build(chats, cfg, counter)
    if not result.train:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in result.drops.most_common()) or "no reply of mine"
        raise HiveError(f"no training sample could be built (dropped: {reasons}); {output} was left as it was. Check "
                        f"extract.me and model.max_seq_length, then run convert.py again")
    fileio.remove_stale_temps(output.parent)  # a killed run's half-written samples hold chat text
    write_jsonl(output, result.train)
    write_jsonl(paths.validation_file(output), result.validation)
    return result
