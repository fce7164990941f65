r"""Benchmark: extract's redaction (hive/privacy.py) on adversarial text, against reading the text and against the
first implementation (the named baseline), plus phone-number recall on libphonenumber's example numbers and what
redaction changes in real chat text.

    python bench/bench_redact.py                        # 1 MB per input kind, median of 5; the old redactor on 10 KB
    python bench/bench_redact.py --mb 4 --repeats 3 --old-kb 10
    python bench/bench_redact.py --phonenumbers         # also PhoneNumberMatcher (pip install phonenumbers)
    python bench/bench_redact.py --phonenumbers --out redact.json   # also every table as JSON

Each input kind is one string (one hostile message of --mb MB). Columns: read s (the text read back from a file),
split s (str.split), scan s (one trivial regex pass, re.findall(r"\w+"): what reading it with a regex costs), redact s
(Redactor with every kind on), x split and x scan (redact / split, redact / scan); then, on --old-kb KB of the same
kind, the old redactor (quadratic on a run of digits glued to a word: 57 s for 60 KB) and the new one.
Chat text is the real messages of bench/chitchat_exports.py (pip install chitchat-dataset), redacted one by one;
the messages that redaction changes are counted and a few are printed to inspect (chitchat holds no real numbers,
so these are false positives or harmless). Recall: libphonenumber's example numbers of every region (mobile and
fixed line), written in international, E.164 and national format inside a sentence; found = no digit of the number
is left.
"""

import argparse
import collections
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import record  # noqa: E402

from hive.privacy import KINDS, Redactor  # noqa: E402


class OldRedactor:
    """The first implementation (Hive before issue 14), kept here as the baseline."""

    URL = re.compile(r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\"'.,;:!?)\]}]")
    EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
    PHONE = re.compile(r"[+(0-9][0-9 \u00a0\u2011().+-]{6,}[0-9](?!\w)")
    DIGIT = re.compile(r"[0-9]")

    def _phone(self, m):
        text, start = m.group(0), m.start()
        if start and (m.string[start - 1].isalnum() or m.string[start - 1] in "_+"):
            return text
        digits = len(self.DIGIT.findall(text))
        return "<PHONE>" if (8 if text[0] in "+(" else 9) <= digits <= 15 else text

    def __call__(self, text: str) -> str:
        if "://" in text or "www." in text:
            text = self.URL.sub("<URL>", text)
        if "@" in text:
            text = self.EMAIL.sub("<EMAIL>", text)
        return self.PHONE.sub(self._phone, text)


def adversarial(kind: str, size: int) -> str:
    """`size` characters of one hostile kind (seeded)."""
    rng = random.Random(kind)
    if kind == "digits":                               # glued to a word: the old pattern backtracks at every digit
        return "7" * (size - 1) + "x"
    elif kind == "digit groups":
        return "".join(rng.choice("0123456789") * rng.randint(1, 4) + rng.choice(" .-/")
                       for _ in range(size // 3))[:size]
    elif kind == "separators":
        unit = "1 -2.(3)/4 +5-.6 "
    elif kind == "phones":
        unit = "+44 7700 900123 "
    elif kind == "@ signs":
        unit = "a@b@1.@@c.d@"
    elif kind == "dots":
        unit = "a.b.c1.d-e."
    elif kind == "mixed":
        return "".join(rng.choice("0123456789 +-.()/@:abcXYZ_") for _ in range(size))
    else:
        raise ValueError(kind)
    return (unit * (size // len(unit) + 1))[:size]


WORDS = re.compile(r"\w+")
KINDS_OF_INPUT = ["digits", "digit groups", "separators", "phones", "@ signs", "dots", "mixed"]


def median_time(fn: Callable, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_time(text: str, repeats: int) -> float:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt") as f:
        f.write(text)
        f.flush()
        return median_time(lambda: Path(f.name).read_text(encoding="utf-8"), repeats)


def chat_messages() -> list[str]:
    """The real messages of the reference chats (chitchat-dataset), or [] when it is not installed."""
    try:
        from chitchat_exports import iter_chats
        return [text for _, messages in iter_chats() for _, _, text in messages]
    except ImportError:
        return []


def phone_examples() -> list[tuple[str, str, str]]:
    """(region, format, number) for libphonenumber's example mobile and fixed-line numbers of every region."""
    import phonenumbers as pn

    out = []
    for region in sorted(pn.SUPPORTED_REGIONS):
        for kind in (pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE):
            number = pn.example_number_for_type(region, kind)
            if number is None:
                continue
            for fmt, name in ((pn.PhoneNumberFormat.INTERNATIONAL, "international"),
                              (pn.PhoneNumberFormat.E164, "E.164"), (pn.PhoneNumberFormat.NATIONAL, "national")):
                out.append((region, name, pn.format_number(number, fmt)))
    return out


def recall(find: Callable[[str], str], examples: Iterable[tuple[str, str, str]]) -> dict[str, tuple[int, int]]:
    """format -> (found, total); found = no digit of the number is left in the redacted sentence."""
    counts: dict[str, list[int]] = {}
    for _, fmt, number in examples:
        out = find(f"my number is {number} thanks")
        digits = re.sub(r"\D", "", number)
        left = re.sub(r"\D", "", out)
        counts.setdefault(fmt, [0, 0])[1] += 1
        counts[fmt][0] += digits not in left and not (len(digits) > 4 and digits[-4:] in left)
    return {fmt: (a, b) for fmt, (a, b) in counts.items()}


def phonenumbers_redactor(region: str, leniency_name: str) -> Callable[[str], str]:
    import phonenumbers as pn

    leniency = getattr(pn.Leniency, leniency_name)

    def redact(text: str) -> str:
        out, last = [], 0
        for match in pn.PhoneNumberMatcher(text, region, leniency=leniency):
            out.append(text[last:match.start])
            out.append("<PHONE>")
            last = match.end
        out.append(text[last:])
        return "".join(out)

    return redact


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=1.0, help="size of each adversarial input, MB")
    p.add_argument("--repeats", type=int, default=5, help="runs per measurement (median reported)")
    p.add_argument("--old-kb", type=int, default=10, help="input size for the old redactor, KB (it is quadratic)")
    p.add_argument("--phonenumbers", action="store_true", help="also time and score PhoneNumberMatcher")
    p.add_argument("--out", type=Path, help="write every table as JSON here (bench/record.py)")
    args = p.parse_args(argv)
    rows, out = [], {"mb": args.mb, "old_kb": args.old_kb, "repeats": args.repeats}

    def save():
        if args.out:
            record.write(args.out, rows, argv, **out)

    new, old = Redactor(KINDS), OldRedactor()
    size, small = int(args.mb * 1e6), args.old_kb * 1000
    print(f"{'input':<14}{'MB':>5}{'read s':>8}{'split s':>8}{'scan s':>8}{'redact s':>9}{'x split':>8}{'x scan':>7}"
          f"  |{'KB':>4}{'old s':>9}{'new s':>9}{'old/new':>9}")
    for kind in KINDS_OF_INPUT:
        text, head = adversarial(kind, size), adversarial(kind, small)
        read, split = read_time(text, args.repeats), median_time(text.split, args.repeats)
        scan = median_time(lambda text=text: WORDS.findall(text), args.repeats)
        redact = median_time(lambda text=text: new(text), args.repeats)
        old_s = median_time(lambda head=head: old(head), 1)
        new_s = median_time(lambda head=head: new(head), args.repeats)
        print(f"{kind:<14}{len(text) / 1e6:>5.1f}{read:>8.4f}{split:>8.4f}{scan:>8.4f}{redact:>9.4f}"
              f"{redact / split:>8.1f}{redact / scan:>7.1f}  |{small // 1000:>4}{old_s:>9.3f}{new_s:>9.4f}"
              f"{old_s / new_s:>9.0f}", flush=True)
        rows.append({"input": kind, "mb": len(text) / 1e6, "read_s": read, "split_s": split, "scan_s": scan,
                     "redact_s": redact, "x_split": redact / split, "x_scan": redact / scan,
                     "placeholders": len(re.findall(r"<[A-Z]+>", new(text))), "old_s": old_s, "new_s": new_s})
        save()

    messages = chat_messages()
    chat = "\n".join(messages)
    if messages:
        text = chat
        mb = len(text.encode()) / 1e6
        read, split = read_time(text, args.repeats), median_time(text.split, args.repeats)
        scan = median_time(lambda: WORDS.findall(text), args.repeats)
        redact = median_time(lambda: [new(m) for m in messages], args.repeats)
        old_s = median_time(lambda: [old(m) for m in messages], args.repeats)
        print(f"{'chat text':<14}{mb:>5.1f}{read:>8.4f}{split:>8.4f}{scan:>8.4f}{redact:>9.4f}{redact / split:>8.1f}"
              f"{redact / scan:>7.1f}  |{'all':>4}{old_s:>9.3f}{redact:>9.4f}{old_s / redact:>9.1f}"
              f"   ({len(messages):,} messages, one by one)")
        changed = [(m, new(m)) for m in messages if new(m) != m]
        print(f"\nchat text: redaction changed {len(changed)} of {len(messages):,} real messages "
              f"({len(changed) / len(messages):.3%}); the first 12:")
        for before, after in changed[:12]:
            print(f"  {before[:90]!r}\n    -> {after[:90]!r}")
        placeholders = collections.Counter(p for _, after in changed for p in re.findall(r"<[A-Z]+>", after))
        out["chat"] = {"messages": len(messages), "mb": mb, "read_s": read, "split_s": split, "scan_s": scan,
                       "redact_s": redact, "old_s": old_s, "changed": len(changed),
                       "placeholders": dict(placeholders.most_common())}
        save()

    try:
        examples = phone_examples()
    except ImportError:
        print("\nrecall on libphonenumber's example numbers: skipped (pip install phonenumbers)")
        return 0
    finders = {"hive (phone only)": Redactor(["phone"])}
    out["regions"] = len({region for region, _, _ in examples})
    if args.phonenumbers:
        for region, leniency in (("GB", "VALID"), ("US", "VALID"), ("GB", "POSSIBLE")):
            finders[f"PhoneNumberMatcher {region} {leniency}"] = phonenumbers_redactor(region, leniency)
    print(f"\nphone recall on libphonenumber's example numbers ({len(examples)} in 3 formats, in a sentence), and "
          f"how many of the {len(messages):,} real chat messages each finder changes:")
    for name, find in finders.items():
        scores = recall(find, examples)
        changed = sum(find(m) != m for m in messages)
        print(f"  {name:<32}" + "  ".join(f"{fmt} {a}/{b} ({a / b:.1%})" for fmt, (a, b) in scores.items())
              + f"  chat messages changed {changed}")
        out.setdefault("recall", []).append({"finder": name, "changed": changed, **{
            fmt: {"found": a, "total": b, "share": a / b} for fmt, (a, b) in scores.items()}})
        save()
    if args.phonenumbers:
        print(f"\n{'PhoneNumberMatcher GB VALID':<30}{'MB':>6}{'seconds':>10}   (adversarial inputs; chat text "
              f"one message at a time)")
        find = finders["PhoneNumberMatcher GB VALID"]
        for kind in KINDS_OF_INPUT:
            text = adversarial(kind, size)
            seconds = median_time(lambda text=text: find(text), 1)
            print(f"{kind:<30}{len(text) / 1e6:>6.1f}{seconds:>10.2f}", flush=True)
            out.setdefault("phonenumbers_s", {})[kind] = seconds
            save()
        if messages:
            seconds = median_time(lambda: [find(m) for m in messages], 1)
            print(f"{'chat text':<30}{len(chat.encode()) / 1e6:>6.1f}{seconds:>10.2f}")
            out["phonenumbers_s"]["chat text"] = seconds
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
