"""Checking and repairing chat JSONL files in the Hugging Face `messages` format, for validate_dataset.py,
fix_dataset.py and clean_incomplete.py. Lines are numbered from 1 as in an editor; no line is ever lost silently:
each one is kept, repaired, or listed as dropped with its number and the reason.
"""

import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hive.conversations import ROLES, incomplete_reason, problems
from hive.errors import HiveError, missing_input
from hive.fileio import atomic_write, backup, json_line
from hive.tokens import TokenCounter

ROLE_ALIASES = {
    "human": "user", "usr": "user", "person": "user", "friend": "user", "them": "user", "other": "user",
    "prompter": "user", "question": "user", "input": "user",
    "gpt": "assistant", "bot": "assistant", "ai": "assistant", "model": "assistant", "me": "assistant",
    "chatgpt": "assistant", "answer": "assistant", "output": "assistant", "response": "assistant",
    "sys": "system", "system_prompt": "system",
}
SMALL = 500  # fewer samples than this teach little style (the original readiness bands: <500 / 500-999 / 1000+)
# A backslash escape that JSON allows; anything else after a backslash was meant literally.
ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt]|.?)', re.S)


@dataclass
class Problem:
    line: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.detail}"


def read_lines(path: Path) -> tuple[list[str], set[int]]:
    """The file's lines (no line endings) and the numbers of those that were not valid UTF-8: each line is decoded
    on its own, so a bad byte costs one character (U+FFFD), not the file."""
    if not path.is_file():
        error = missing_input(path, "convert.py", "dataset file")
        error.exit_code = 2
        raise error
    try:
        chunks = path.read_bytes().split(b"\n")
    except OSError as e:
        raise HiveError(f"cannot read {path}: {e.strerror}; check its permissions", exit_code=2) from None
    if chunks[-1] == b"":
        chunks.pop()  # the newline that ends the last line
    lines, bad = [], set()
    for number, chunk in enumerate(chunks, 1):
        chunk = chunk.rstrip(b"\r")
        try:
            lines.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(chunk.decode("utf-8", errors="replace"))
            bad.add(number)
    return lines, bad


@dataclass
class Report:
    """What validate() found: problems by line, the valid samples and their statistics."""
    path: Path
    lines: int = 0
    blank: int = 0  # blank lines are skipped by every reader, so they are counted, not reported
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # duplicates: trainable, but seen more often than meant
    samples: list[list[dict]] = field(default_factory=list)
    tokens: list[int] | None = None
    token_note: str = ""

    @property
    def bad_lines(self) -> int:
        return len({p.line for p in self.problems})

    def verdict(self) -> str:
        if self.problems:
            return (f"NOT READY: {len(self.problems):,} problem(s) on {self.bad_lines:,} line(s). "
                    f"`python fix_dataset.py --input {self.path}` repairs format problems; "
                    f"`python clean_incomplete.py --input {self.path}` drops incomplete samples")
        if not self.samples:
            return "NOT READY: no samples"
        dups = f"; {len(self.warnings):,} duplicate(s) skipped (trained more often than meant)" if self.warnings else ""
        if len(self.samples) < SMALL:
            return (f"READY, but small: {len(self.samples):,} samples "
                    f"(under {SMALL} teach the model little of your style){dups}")
        return f"READY: {len(self.samples):,} samples{dups}"

    def stats(self) -> dict:
        turns = [sum(m["role"] != "system" for m in s) for s in self.samples]
        roles = Counter(m["role"] for s in self.samples for m in s)
        rows = {"lines": self.lines, "blank lines": self.blank, "samples": len(self.samples),
                "duplicates": len(self.warnings), "problems": len(self.problems)}
        rows.update({f"problems: {k}": n for k, n in sorted(Counter(p.kind for p in self.problems).items())})
        if self.samples:
            rows["turns per sample"] = _spread(turns)
            rows["roles"] = ", ".join(f"{r} {roles[r]:,}" for r in ROLES if roles[r])
            for role in ("user", "assistant"):
                lengths = [len(m["content"]) for s in self.samples for m in s if m["role"] == role]
                rows[f"{role} characters"] = _spread(lengths)
            rows["with a system prompt"] = sum(s[0]["role"] == "system" for s in self.samples)
        rows["tokens per sample"] = _spread(self.tokens) if self.tokens else self.token_note
        return rows


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    return (f"mean {statistics.fmean(values):.1f}, median {statistics.median(values):g}, "
            f"min {min(values)}, max {max(values)}")


def validate(path: Path, counter: TokenCounter | None, max_seq_length: int) -> Report:
    """Every problem of the file: JSON, schema, roles, order, empty content and (with a real tokenizer) samples
    longer than max_seq_length; duplicate samples are warnings."""
    report = Report(path)
    lines, bad_utf8 = read_lines(path)
    report.lines = len(lines)
    report.problems.extend(Problem(n, "invalid UTF-8", "bytes that are not UTF-8") for n in sorted(bad_utf8))
    first_seen: dict[str, int] = {}
    numbers = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            report.blank += 1
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            report.problems.append(Problem(number, "invalid JSON", f"{e.msg} at column {e.colno}"))
            continue
        found = problems(obj)
        report.problems.extend(Problem(number, kind, detail) for kind, detail in found)
        if found:
            continue
        key = json.dumps(obj["messages"], ensure_ascii=False, sort_keys=True)
        if key in first_seen:
            report.warnings.append(Problem(number, "duplicate", f"same sample as line {first_seen[key]}"))
            continue
        first_seen[key] = number
        report.samples.append(obj["messages"])
        numbers.append(number)
    if counter is not None and counter.exact and report.samples:
        report.tokens = counter.count_conversations(report.samples, desc="counting tokens")
        report.problems.extend(
            Problem(number, "too long", f"{n:,} tokens > model.max_seq_length {max_seq_length:,}")
            for number, n in zip(numbers, report.tokens) if n > max_seq_length
        )
    else:
        report.token_note = "not checked (no tokenizer: pass --tokenizer NAME)"
    report.problems.sort(key=lambda p: p.line)
    return report


# ---- repair ------------------------------------------------------------------------------------------------------

class _Duplicated(dict):
    """A JSON object that repeated a key: the values are last-wins, as json.loads would keep them; `pairs` keeps all."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self.pairs = pairs


def _object(pairs):
    return _Duplicated(pairs) if len({k for k, _ in pairs}) < len(pairs) else dict(pairs)


_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def _decode_all(text: str) -> tuple[list, str]:
    """The JSON values on one line, in order (separated by nothing, spaces or commas), and what trails them."""
    values, pos = [], 0
    while True:
        while pos < len(text) and text[pos] in " \t,;":
            pos += 1
        if pos == len(text):
            return values, ""
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            return values, text[pos:]
        values.append(value)


def _fix_escape(m: re.Match) -> str:
    seq = m.group(1)
    return m.group(0) if seq and (seq[0] in '"\\/bfnrt' or (seq[0] == "u" and len(seq) == 5)) else "\\\\" + seq


def _content(value, repairs: list[str]):
    if isinstance(value, list):  # multimodal parts: [{"type": "text", "text": ...}]
        repairs.append("content made text: parts joined")
        return "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        repairs.append("content made text: a number")
        return str(value)
    return value


def _message(m, repairs: list[str]) -> list:
    """One message, normalized; a message object with repeated role/content pairs becomes several messages."""
    if not isinstance(m, dict):
        return [m]
    if isinstance(m, _Duplicated):
        keys = [k for k, _ in m.pairs]
        if set(keys) <= {"role", "content"} and len(keys) % 2 == 0 and keys[::2] == ["role"] * (len(keys) // 2) \
                and keys[1::2] == ["content"] * (len(keys) // 2):
            repairs.append(f"duplicated keys: role/content pairs split into {len(keys) // 2} messages")
            return [x for i in range(0, len(keys), 2)
                    for x in _message({"role": m.pairs[i][1], "content": m.pairs[i + 1][1]}, repairs)]
        repeated = ", ".join(sorted({k for k in keys if keys.count(k) > 1}))
        repairs.append(f"duplicated keys: {repeated} (kept the last value)")
    out = dict(m)
    if "role" not in out and "from" in out:
        out["role"] = out.pop("from")
        repairs.append("keys renamed: from -> role")
    for alias in ("value", "text"):
        if "content" not in out and alias in out:
            out["content"] = out.pop(alias)
            repairs.append(f"keys renamed: {alias} -> content")
    if isinstance(out.get("role"), str):
        role = out["role"].strip().lower()
        role = ROLE_ALIASES.get(role, role)
        if role != out["role"]:
            repairs.append(f"roles renamed: {out['role']!r} -> {role!r}")
            out["role"] = role
    if "content" in out:
        out["content"] = _content(out["content"], repairs)
    return [out]


def _turns(value, role: str) -> list:
    return value if isinstance(value, list) else [{"role": role, "content": value}]


def _sample(obj, repairs: list[str]):
    """`obj` as a {"messages": [...]} sample, or a string saying why it cannot be one."""
    if isinstance(obj, list) and obj and all(isinstance(m, dict) and ({"role", "from"} & set(m)) for m in obj):
        repairs.append("bare list of messages wrapped in `messages`")
        obj = {"messages": obj}
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    if isinstance(obj, _Duplicated):
        dup = sorted({k for k, _ in obj.pairs if [x for x, _ in obj.pairs].count(k) > 1})
        repairs.append(f"duplicated keys: {', '.join(dup)} (kept the last value)")
        obj = dict(obj)
    lowered = {k.lower() if isinstance(k, str) else k: v for k, v in obj.items()}
    if isinstance(obj.get("messages"), list):
        messages, rest = obj["messages"], {k: v for k, v in obj.items() if k != "messages"}
    elif isinstance(obj.get("conversations"), list):
        repairs.append("ShareGPT `conversations` converted")
        messages, rest = obj["conversations"], {}
    elif "prompt" in obj and ("completion" in obj or "response" in obj):
        repairs.append("prompt/completion converted")
        reply = obj["completion"] if "completion" in obj else obj["response"]
        messages, rest = _turns(obj["prompt"], "user") + _turns(reply, "assistant"), {}
    elif {"user", "assistant"} <= {ROLE_ALIASES.get(k, k) for k in lowered}:
        repairs.append("flat user/assistant object converted")
        ordered = [(ROLE_ALIASES.get(k, k), v) for k, v in lowered.items() if ROLE_ALIASES.get(k, k) in ROLES]
        ordered.sort(key=lambda kv: kv[0] != "system")  # stable: the system prompt first, the rest in file order
        messages, rest = [{"role": r, "content": v} for r, v in ordered], {}
    else:
        return "no `messages`, `conversations`, prompt/completion or user/assistant keys"
    fixed = [x for m in messages for x in _message(m, repairs)]
    return {"messages": fixed, **rest}


@dataclass
class FixReport:
    backup: Path | None = None  # where the original went
    lines: int = 0
    out: list[str] = field(default_factory=list)  # the repaired file, one string per line (newline included)
    fixed: dict[int, list[str]] = field(default_factory=dict)  # line -> repairs made
    dropped: list[Problem] = field(default_factory=list)
    remaining: list[Problem] = field(default_factory=list)  # kept, but still not a valid sample

    @property
    def changed(self) -> bool:
        return bool(self.fixed or self.dropped)


def fix_lines(lines: list[str], bad_utf8: set[int] = frozenset()) -> FixReport:
    report = FixReport(lines=len(lines))
    for number, line in enumerate(lines, 1):
        repairs: list[str] = []
        if number in bad_utf8:
            repairs.append("invalid UTF-8 replaced by U+FFFD")
        text = line.strip()
        if text.startswith("\ufeff"):
            text = text.lstrip("\ufeff").strip()
            repairs.append("byte order mark removed")
        if not text:
            report.dropped.append(Problem(number, "dropped", "blank line"))
            continue
        values, garbage = _decode_all(text)
        if not values or garbage:
            escaped = ESCAPE.sub(_fix_escape, text)
            values2, garbage2 = _decode_all(escaped) if escaped != text else ([], text)
            if values2 and (not values or len(garbage2) < len(garbage)):
                values, garbage = values2, garbage2
                repairs.append("invalid escapes made literal backslashes")
        if not values:
            report.dropped.append(Problem(number, "dropped", f"not JSON: {text[:60]!r}"))
            continue
        if garbage:
            repairs.append(f"trailing garbage removed: {garbage[:40]!r}")
        if len(values) > 1:
            repairs.append(f"several samples on one line: {len(values)} split")
        if (len(values) == 1 and isinstance(values[0], list) and values[0]
                and all(isinstance(v, dict) and "messages" in v for v in values[0])):
            repairs.append(f"several samples on one line: array of {len(values[0])} split")
            values = values[0]
        samples = []
        for value in values:
            sample = _sample(value, repairs)
            if isinstance(sample, str):
                report.dropped.append(Problem(number, "dropped", sample))
            else:
                samples.append(sample)
        if not repairs and len(samples) == 1:
            report.out.append(line + "\n")  # untouched lines stay byte for byte
        else:
            report.out.extend(json_line(s) for s in samples)
            report.fixed[number] = list(dict.fromkeys(repairs))
        for sample in samples:
            report.remaining.extend(Problem(number, kind, detail) for kind, detail in problems(sample))
    return report


def fix_file(path: Path, dry_run: bool) -> FixReport:
    """Repair `path` in place unless dry_run or nothing needs repair, keeping the original as a new .bak (fileio)."""
    report = fix_lines(*read_lines(path))
    if report.changed and not dry_run:
        report.backup = backup(path)
        with atomic_write(path) as f:
            f.writelines(report.out)
    return report


# ---- incomplete samples ------------------------------------------------------------------------------------------

@dataclass
class CleanReport:
    backup: Path | None = None  # where the original went
    lines: int = 0
    kept: int = 0
    dropped: list[Problem] = field(default_factory=list)


def clean_file(path: Path, dry_run: bool) -> CleanReport:
    """Drop incomplete samples from `path` (kept lines unchanged, the original kept as a new .bak). Refuses a file with
    lines that are not JSON, which fix_dataset.py may still repair."""
    lines, _ = read_lines(path)  # invalid UTF-8 shows up as U+FFFD in a kept line; validate_dataset.py reports it
    report, out = CleanReport(lines=len(lines)), []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            report.dropped.append(Problem(number, "blank line", ""))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise HiveError(f"{path}:{number} is not valid JSON ({e.msg}); nothing was changed. "
                            f"Run `python fix_dataset.py --input {path}` first") from None
        reason = incomplete_reason(obj)
        if reason:
            report.dropped.append(Problem(number, reason, ""))
        else:
            out.append(line + "\n")
    report.kept = len(out)
    if report.dropped and not dry_run:
        report.backup = backup(path)
        with atomic_write(path) as f:
            f.writelines(out)
    return report
