"""Privacy for extracted chats: URLs, e-mail addresses, phone numbers, IBANs and card numbers in message text become
placeholders, and other people's names can become stable pseudonyms ("Person 1", ...), also where a text mentions
them. README.md, section Privacy, lists what is caught and what is not, with examples.

Redaction runs in time linear in the text, close to one plain regex pass (bench/bench_redact.py). Each finder starts
at an anchor that Python's regex engine can skip to without trying every position: "://", "www.", "@", the dot
before a top-level domain, two digits after two letters (IBAN), a digit or "+" or "(" (numbers). From the anchor,
patterns of bounded length look forward, and reversed patterns look back over at most a few dozen characters, so no
character is read more than a bounded number of times. Numbers are runs of digit groups cut and judged in Python,
not nested regex repetition (the first phone pattern took 57 s on a 60 KB line of digits).
"""

import bisect
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Optional

PLACEHOLDERS = {"url": "<URL>", "email": "<EMAIL>", "phone": "<PHONE>", "iban": "<IBAN>", "card": "<CARD>"}
KINDS = tuple(PLACEHOLDERS)

Spans = Iterator[tuple[int, int]]


def _replace(text: str, spans: Spans, placeholder: str) -> str:
    out, last = [], 0
    for a, b in spans:
        out.append(text[last:a])
        out.append(placeholder)
        last = b
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _before(text: str, end: int, pattern: "re.Pattern", width: int) -> int:
    """How many characters before `end` the reversed `pattern` takes (0 for none); it sees `width` characters and
    what follows them, reversed, so that its look-ahead can check the character before what it takes."""
    back = text[max(0, end - width - 1):end][::-1]
    m = pattern.match(back)
    return m.end() if m and m.end() <= width else 0


# --- URLs and e-mail addresses -------------------------------------------------------------------------------------

# A URL ends before punctuation that belongs to the sentence ("see https://x.org.", "(www.x.org)").
_TAIL = re.compile(r"[^\s<>\"]*[^\s<>\"'.,;:!?)\]}*]|")
_SCHEME = re.compile(r"://")
_SCHEME_BACK = re.compile(r"[a-z0-9+.-]{2,21}(?<=[a-z])(?![\w+.-])", re.I)     # reversed: any scheme, HTTPS, ftp
_WWW = re.compile(r"[wW][wW][wW]\d{0,3}\.")
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
# Top-level domains recognised without a scheme: these, and two-letter ones; the two-letter ones that are also words
# or file extensions ("ok.so", "yes.it", "main.py", "notes.md") count only when a path follows ("t.me/x", "youtu.be/x").
_GENERIC = frozenset("com net org edu gov mil int info biz name pro mobi asia xyz top site online club shop store blog "
                     "app dev page live news tech cloud art design space website fun wiki social link".split())
_WEAK = frozenset("am as at be by do id im in is it me ms my no so to us pa ma la ad al py sh md rs pl ps pm mk ml cc"
                  .split())
_TLD = re.compile(r"\.([^\W\d_]{2,12})(?![\w-]|\.[^\W_])")                   # the last dot of a host name
_HOST_BACK = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?![\w.@/+-])")             # reversed: the labels before it
_PATH = re.compile(r"(?::\d{1,5})?/")
_AT_DOMAIN = re.compile(rf"@(?:{_LABEL}\.)+[^\W\d_]{{2,63}}(?![\w-])")
_LOCAL_BACK = re.compile(r"[\w.+-]{1,64}")                                    # reversed: the part before the @
_URL_PLACEHOLDER = re.compile(r"<URL>")


def _scheme_urls(text: str) -> Spans:
    """URLs with a scheme (any: https, HTTPS, ftp, spotify, ...) or starting with www, in order."""
    schemes, last = [], 0
    if "://" in text:
        for m in _SCHEME.finditer(text):
            start = m.start() - _before(text, m.start(), _SCHEME_BACK, 21)
            if m.start() >= last and start < m.start():
                last = _TAIL.match(text, m.end()).end()
                schemes.append((start, last))
    p = last = 0
    for m in _WWW.finditer(text):
        start = m.start()
        while p < len(schemes) and schemes[p][1] <= start:
            yield schemes[p]
            p += 1
        if start < last or (p < len(schemes) and schemes[p][0] <= start) or \
                (start and (text[start - 1].isalnum() or text[start - 1] in "_.-")):
            continue
        last = _TAIL.match(text, m.end()).end()
        yield start, last
        while p < len(schemes) and schemes[p][0] < last:          # inside this one's path
            p += 1
    yield from schemes[p:]


def _domains(text: str) -> Spans:
    """Host names without a scheme (example.com, youtu.be/x, instagram.com/sam), by their top-level domain."""
    last = 0
    for m in _TLD.finditer(text):
        tld = m[1].lower()
        if m.start() < last or not (tld in _GENERIC or len(tld) == 2):
            continue
        labels = _before(text, m.start(), _HOST_BACK, 253)
        if not labels:
            continue
        path = _PATH.match(text, m.end())
        if not path and tld in _WEAK:
            continue
        last = _TAIL.match(text, path.end()).end() if path else m.end()
        yield m.start() - labels, last


def _emails(text: str) -> Spans:
    last = 0
    for m in _AT_DOMAIN.finditer(text):
        local = _before(text, m.start(), _LOCAL_BACK, 64)
        if local and m.start() - local >= last:
            last = m.end()
            yield m.start() - local, last


def strip_urls(text: str) -> str:
    """The original Hive's rule for its plain output and the sliding mode: URLs removed, not replaced (also the
    <URL> that redaction left)."""
    if "<URL>" in text:
        text = _URL_PLACEHOLDER.sub("", text)
    if "://" in text or "." in text:
        text = _replace(text, _scheme_urls(text), "")
        text = _replace(text, _domains(text), "")
    return text


# --- IBANs ---------------------------------------------------------------------------------------------------------

# Anchored at the check digits (the engine skips to digits): two letters before them, then 11-30 letters and digits.
_IBAN = re.compile(r"\d\d(?<=[a-z]{2}\d\d)(?<![^\W_][a-z]{2}\d\d)(?:[ \u00a0-]?[a-z0-9]){11,30}(?![^\W_])", re.I)


def _iban_ok(code: str) -> bool:
    """ISO 13616: 15-34 characters whose rearranged number leaves 1 modulo 97."""
    code = code.upper()
    if not (15 <= len(code) <= 34 and code[:2].isalpha() and code[2:4].isdigit() and code.isascii()):
        return False
    return int("".join(str(int(c, 36)) for c in code[4:] + code[:4])) % 97 == 1


def _ibans(text: str) -> Spans:
    # The pattern is greedy and may run into the next words ("... 32 is mine"): the longest prefix that ends where a
    # group ends and passes the checksum is the IBAN.
    for m in _IBAN.finditer(text):
        start, candidate = m.start() - 2, text[m.start() - 2:m.end()]
        ends = [i for i in range(len(candidate)) if i + 1 == len(candidate) or not candidate[i + 1].isalnum()]
        for end in reversed(ends):
            if _iban_ok("".join(c for c in candidate[:end + 1] if c.isalnum())):
                yield start, start + end + 1
                break


# --- Phone and card numbers ----------------------------------------------------------------------------------------

_SEPS = " \u00a0\u202f.\\-/\u2010-\u2015"
# A run of digit groups joined by single separators; "+" and "(" may open a group, ")" may close one. It starts with a
# character class, so the engine skips to candidates; groups without a digit ("(" alone) are ignored later.
NUMBER = re.compile(rf"[\d+(][\d()+]*(?:[{_SEPS}][\d()+]+)*")
_SPLIT = re.compile(rf"([{_SEPS}])")
_NON_DIGITS = re.compile(r"\D+")
_DIGIT = re.compile(r"\d")
# seven characters or more that could be a run with seven digits: the cheap test before the real search
_LONG_NUMBER = re.compile(rf"[\d+(][\d()+\s{_SEPS}]{{6,}}")
_NOT_DIGIT = re.compile(rf"[^\d{_SEPS}]+")
_UNICODE_DASH = re.compile("[\u2010-\u2015]")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015"), "-")
_CURRENCY = frozenset("$€£¥₹₩₽₺₪฿₫₦₱¢")
# Chains of groups that are not a phone number, matched on a run's digits and separators: dates of three groups
# joined by one repeated separator (14.03.2024, 2024-03-14, 3/14/24), decimals (3.14159) and dotted amounts
# (1.000.000.000). Not in a run that starts with "+": +687 20.12.34, +34 612.345.678.
_DAY, _MONTH, _YEAR = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])", r"(?:\d{4}|\d\d)"
_ORDINARY = re.compile(
    rf"(?<![\d./-])(?:{_DAY}([./-]){_MONTH}\1{_YEAR}|{_MONTH}([./-]){_DAY}\2{_YEAR}|\d{{4}}([./-]){_MONTH}\3{_DAY})"
    rf"(?![./-]?\d)|(?<![\d.])(?:\d+\.\d+|[1-9]\d{{0,2}}(?:\.\d{{3}})+)(?!\.?\d)")
# A phone number has at most this many groups. A run of more than _MAX_SEARCH groups is a list of numbers (or an
# attack): only international numbers are looked for in it, so that the work per group stays small.
_MAX_GROUPS, _MAX_SEARCH = 8, 64


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card(groups: list[str], digits: list[str], seps: list[str]) -> bool:
    number = "".join(digits)
    return (13 <= len(number) <= 19 and number[0] in "23456" and len(groups) <= 5 and len(set(seps)) <= 1
            and set(seps) <= {" ", "-"} and all(g.isdigit() for g in groups) and _luhn(number))


def _phone(groups: list[str], digits: list[str], seps: list[str], before: str) -> bool:
    """Whether digit groups are one phone number (see README.md, Privacy, for the shapes)."""
    number = "".join(digits)
    n = len(number)
    if groups[0].startswith(("+", "(+")):
        return 7 <= n - " ".join(groups[1:]).count(" (0)") <= 15       # +44 (0)20 ...: the 0 is not dialled
    if number.startswith("00"):
        return 10 <= n <= 17 and number[2] != "0"
    if before == "@":                                                    # a WhatsApp mention of a number: @447700900123
        return 8 <= n <= 15
    if not 9 <= n <= 12:
        return False
    if len(groups) == 1 and groups[0].isdigit():
        if number[0] == "0":
            return n in (10, 11)
        if n == 10:                       # North America (area and exchange codes start with 2-9) or an Indian mobile
            return number[0] in "23456789" and (number[3] in "23456789" or number[0] in "6789")
        return n == 11 and number[0] == "1" and (number[1] in "3456789" or number[4] in "23456789")   # China, 1 + N.A.
    if number[0] != "0" and max(map(len, digits)) < 3:                  # 21 18 25 22 19: a list of small numbers
        return False
    if all(s == "." for s in seps) and not all(2 <= len(d) <= 4 for d in digits):   # 10.0.19045.3570: a version
        return False
    if all(len(d) == 4 and d[:2] in ("19", "20") for d in digits):      # 1990 2020 2021: years
        return False
    return "/" not in seps[1:]


def _numbers(m: "re.Match", card: Optional[str], phone: Optional[str]) -> str:
    """A run of digit groups with its card and phone numbers replaced."""
    run = m[0]
    if len(run) < 8 or len(_NON_DIGITS.sub("", run)) < 7:      # too short for either: most numbers end here
        return run
    text = m.string
    parts = _SPLIT.split(run)
    # An unbalanced parenthesis belongs to the sentence: "(call 07700 900123)".
    lead = trail = ""
    if parts[-1].endswith(")") and parts[-1].count(")") > parts[-1].count("("):
        trail, parts[-1] = ")", parts[-1][:-1]
    if parts[0].startswith("(") and parts[0].count("(") > parts[0].count(")"):
        lead, parts[0] = "(", parts[0][1:]
    groups, n = parts[0::2], len(parts) // 2 + 1
    plain = not ("(" in run or ")" in run or "+" in run)
    split = parts
    if not plain or _UNICODE_DASH.search(run):
        split = _SPLIT.split(_NOT_DIGIT.sub("", "".join(parts)).translate(_DASHES))
    digits, seps = split[0::2], split[1::2]
    before = text[m.start() - 1] if m.start() else " "
    after = text[m.end()] if m.end() < len(text) else " "

    # Dates, decimals and amounts are looked for in runs of up to _MAX_SEARCH groups; a longer run is a list of
    # numbers (or an attack), searched from "+" only.
    skip = set() if plain or n > _MAX_SEARCH else {k for k, d in enumerate(digits) if not d}
    joined = "".join(split)
    international = groups[0][:1] == "+" or groups[0][:2] == "(+"
    if n <= _MAX_SEARCH and not international and ("." in joined or "-" in joined or "/" in joined):
        starts = list(accumulate(map(len, split), initial=0))[0::2]
        for hit in _ORDINARY.finditer(joined):
            skip.update(range(bisect.bisect_left(starts, hit.start()), bisect.bisect_left(starts, hit.end())))
    # A group glued to a word is part of it ("B12 +44 ...", "iPhone15 07700 ...", "1990s"), and one after a currency
    # sign or before a percent sign is an amount (£1 000 000 000: with the thousands that follow).
    if before.isalnum() or before == "_" or before in _CURRENCY:
        skip.add(0)
    if after.isalnum() or after == "_" or after in _CURRENCY or after == "%":
        skip.add(n - 1)
    if before in _CURRENCY:
        k = 1
        while k < n and len(digits[k]) == 3 and seps[k - 1] in " .":
            skip.add(k)
            k += 1

    pre = list(accumulate(map(len, digits), initial=0))
    found, i = [], 0
    for s in [*sorted(skip), n]:
        if pre[s] - pre[i] >= 7:
            found += _segment(groups, digits, seps, pre, i, s - 1, before if i == 0 else seps[i - 1], card, phone)
        i = s + 1
    if not found:
        return run
    out, k = [lead], 0
    for a, b, placeholder in found:
        out += ["".join(parts[k:2 * a]), placeholder]
        k = 2 * b + 1
    out += ["".join(parts[k:]), trail]
    return "".join(out)


def _segment(groups, digits, seps, pre, i: int, j: int, before: str, card: Optional[str],
             phone: Optional[str]) -> list:
    """[(first group, last group, placeholder)] for groups i..j. The whole is a card or phone number, or else phone
    numbers are searched from the groups that open one ("+", "(", a leading 0, the one after a number found),
    longest first; not from any group, or 4532 1234 5678 9010 (no card) would lose its first 12 digits."""
    total = pre[j + 1] - pre[i]
    if card and 13 <= total <= 19 and j - i < 5 and _card(groups[i:j + 1], digits[i:j + 1], seps[i:j]):
        return [(i, j, card)]
    if not phone:
        return []
    if 7 <= total <= 17 and _phone(groups[i:j + 1], digits[i:j + 1], seps[i:j], before):
        return [(i, j, phone)]
    if j - i >= _MAX_SEARCH:          # a list of numbers: international ones, each up to the next "+"
        plus = [k for k in range(i, j + 1) if groups[k][:1] == "+"]
        found = []
        for a, b in zip(plus, [k - 1 for k in plus[1:]] + [j]):
            b = min(b, a + _MAX_GROUPS - 1)
            while b > a and pre[b + 1] - pre[a] > 17:
                b -= 1
            if _phone(groups[a:b + 1], digits[a:b + 1], seps[a:b], seps[a - 1] if a else before):
                found.append((a, b, phone))
        return found
    openers = [k for k in range(i, j + 1) if groups[k][:1] in ("+", "(")
               or (digits[k][:1] == "0" and len(digits[k]) >= 2 and digits[k][:3] != "000")]
    found, covered, queue = [], i - 1, openers[::-1]
    while queue:
        a = queue.pop()
        if a <= covered:
            continue
        b = _longest_phone(groups, digits, seps, pre, a, j, before if a == i else seps[a - 1])
        if b is not None:
            found.append((a, b, phone))
            covered = b
            if b < j:
                queue.append(b + 1)
    return found


def _longest_phone(groups, digits, seps, pre, a: int, j: int, before: str) -> Optional[int]:
    """The last group of the longest phone number that starts at group a, preferring one that ends where another
    number starts ("+61 4 1234 5678 0412 345 678"), or None."""
    last = a
    while last < min(j, a + _MAX_GROUPS - 1) and groups[last + 1][:1] != "+" and pre[last + 2] - pre[a] <= 17:
        last += 1
    for natural in (True, False):
        for b in range(last, a - 1, -1):
            if pre[b + 1] - pre[a] < 7:
                break
            if (b == j or groups[b + 1][:1] in ("+", "(", "0")) == natural and \
                    _phone(groups[a:b + 1], digits[a:b + 1], seps[a:b], before):
                return b
    return None


# --- The redactor --------------------------------------------------------------------------------------------------


class Redactor:
    """Replaces the configured kinds (KINDS) in a text by their PLACEHOLDERS. URLs go first (they may hold anything),
    then e-mail addresses (before their domain could pass for a URL), IBANs, then card and phone numbers. Picklable:
    extract's worker processes get it."""

    def __init__(self, kinds: Iterable[str]):
        kinds = set(kinds)
        assert kinds <= set(KINDS), kinds
        self.url, self.email, self.iban = "url" in kinds, "email" in kinds, "iban" in kinds
        self.card, self.phone = (PLACEHOLDERS[k] if k in kinds else None for k in ("card", "phone"))

    def __call__(self, text: str) -> str:
        # the checks before each finder are cheap, and most messages fail all of them
        if self.url and ("://" in text or "w." in text or "W." in text):
            text = _replace(text, _scheme_urls(text), PLACEHOLDERS["url"])
        if self.email and "@" in text and _AT_DOMAIN.search(text):
            text = _replace(text, _emails(text), PLACEHOLDERS["email"])
        if self.url and "." in text and _TLD.search(text):
            text = _replace(text, _domains(text), PLACEHOLDERS["url"])
        if (self.iban or self.card or self.phone) and _DIGIT.search(text):
            if self.iban and _IBAN.search(text):
                text = _replace(text, _ibans(text), PLACEHOLDERS["iban"])
            if (self.card or self.phone) and _LONG_NUMBER.search(text):
                text = NUMBER.sub(self._numbers, text)
        return text

    def _numbers(self, m: "re.Match") -> str:
        return _numbers(m, self.card, self.phone)


# --- Pseudonyms ----------------------------------------------------------------------------------------------------

# Words that are also given names (or are what people save contacts as): such a name is replaced only where it is
# written as a name, capitalised and not at the start of a sentence ("ask Will", "@will"), never "will" or "Will you".
COMMON_WORDS = frozenset("""
will may june april august bill sunny rose mark grace hope joy faith frank art bob pat sue jack don ray dawn summer
autumn winter amber crystal ruby jade iris lily holly ivy cliff gene guy rob chase hunter miles max lane sky star angel
honey chance chuck drew earl pearl penny rich sandy sterling van wade ward page kit nick dev buck bud buddy rusty dusty
randy happy lucky sonny river brook heather daisy poppy violet olive hazel ginger cherry berry bunny candy cookie dolly
misty storm rain sage basil forest glen dale heath gray grey green brown white black king price bishop cook mason
carol jean mercy charity patience melody harmony destiny trinity liberty noel eve gale ash jay robin wren reed fern
bee cat sol ken kay coral opal rocky chip dash sunday monday friday love babe baby bae boss home work office school
gym mum mom mommy mummy mama mother dad daddy papa father bro brother sis sister son daughter grandma grandpa granny
grandad nan nana nanna gran uncle aunt auntie aunty cousin hubby wifey darling sweetie doctor teacher coach
""".split())
# Words before a name that are not a first name: "Dr. Smith" has none, "Uncle Bob"'s is Bob.
_HONORIFICS = frozenset("dr mr mrs ms miss mx prof sir dame lord lady".split())
_KIN = frozenset("uncle aunt auntie aunty cousin grandma grandpa granny nan nana".split())
_WORD = re.compile(r"\w+")


def first_name(name: str) -> Optional[str]:
    """The word of a contact's name that people write alone ("Alex Chen" -> "Alex", "Uncle Bob" -> "Bob",
    "Mum ❤️" -> "Mum"), or None when the name is that one word already, or has none ("Dr. Smith", "+44 ...")."""
    words = _WORD.findall(name)
    if words and words[0].casefold() in _HONORIFICS:
        return None
    if len(words) > 1 and words[0].casefold() in _KIN:
        words = words[1:]
    if not words or words[0] == name.strip() or len(words[0]) < 2 or not words[0].isalpha():
        return None
    return words[0]


class Pseudonyms:
    """Stable pseudonyms: the same name gets the same "Person N" everywhere in a run (numbered in the order the
    names are given). In a text, mentions of a name in any case ("Alex Chen", "alex chen", "ALEX CHEN") and of its
    first name alone ("Alex", "alex", "@Alex") are replaced; a name that is also a word (COMMON_WORDS, or of one or
    two letters) only where it is written as a name: capitalised, not at the start of a sentence, or after "@".
    A first name shared by several contacts is replaced by the pseudonym of the first of them; one shared with a
    name in `keep` (yours) is left alone."""

    def __init__(self, names: Iterable[str], keep: Iterable[str] = ()):
        keep = {k.casefold() for k in keep}
        self.mapping: dict[str, str] = {}
        for name in names:
            if name and name.casefold() not in keep and name not in self.mapping:
                self.mapping[name] = f"Person {len(self.mapping) + 1}"
        kept_first = {f.casefold() for f in map(first_name, keep) if f} | keep
        # casefolded mention -> (pseudonym, whether it is also a word)
        self._mentions: dict[str, tuple[str, bool]] = {}
        for name, pseudonym in self.mapping.items():
            key = name.strip().casefold()
            self._mentions.setdefault(key, (pseudonym, " " not in key and _is_word(key)))
        for name, pseudonym in self.mapping.items():
            first = first_name(name)
            key = first.casefold() if first else None
            if key and key not in kept_first and key not in self._mentions:
                self._mentions[key] = (pseudonym, _is_word(key))
        # Mentions are looked up by their first word, which is fast whatever the number of names (a regex of a
        # thousand alternatives tries each of them at every word); longest first: "Anu - Office" before "Anu".
        self._by_word: dict[str, list[tuple[str, int, str, bool]]] = {}
        for mention in sorted(self._mentions, key=len, reverse=True):
            word = _WORD.search(mention)
            if word:
                self._by_word.setdefault(word[0], []).append((mention, word.start(), *self._mentions[mention]))

    def name(self, name: Optional[str]) -> Optional[str]:
        return self.mapping.get(name, name) if name is not None else None

    def label(self, text: str) -> str:
        """A chat or file name: the pseudonym when it is exactly a name, else its mentions replaced."""
        return self.mapping.get(text) or self.text(text)

    def text(self, text: str) -> str:
        out, last = [], 0
        for word in _WORD.finditer(text):
            for mention, offset, pseudonym, common in self._by_word.get(word[0].casefold(), ()):
                start, end = word.start() - offset, word.start() - offset + len(mention)
                if start < last or text[start:end].casefold() != mention or \
                        (start and (text[start - 1].isalnum() or text[start - 1] == "_")) or \
                        (end < len(text) and (text[end].isalnum() or text[end] == "_")):
                    continue
                if common and not self._written_as_name(text, start, end):
                    continue
                out += [text[last:start], pseudonym]
                last = end
                break
        return "".join(out) + text[last:] if out else text

    @staticmethod
    def _written_as_name(text: str, start: int, end: int) -> bool:
        """After "@", or capitalised (not all capitals) and not at the start of a sentence or line."""
        if start and text[start - 1] == "@":
            return True
        found = text[start:end]
        if not (found[:1].isupper() and found[1:] == found[1:].lower()):
            return False
        window = text[max(0, start - 80):start]
        before = window.rstrip()
        return bool(before) and before[-1] not in ".!?" and "\n" not in window[len(before):]


def _is_word(key: str) -> bool:
    return key in COMMON_WORDS or len(key) <= 2


# --- Names and files outside the messages --------------------------------------------------------------------------


def scrubber(redactor: Redactor, pseudonyms: Optional[Pseudonyms]) -> Callable[[str], str]:
    """What chat names, file names and the summary show: pseudonyms (when on), then redaction."""
    if pseudonyms is None:
        return redactor
    return lambda text: redactor(pseudonyms.label(text))


def scrub_json(value, scrub: Callable[[str], str]):
    """Every string in a JSON value scrubbed, keys too (counts of keys that become equal are added up)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrub_json(v, scrub) for v in value]
    if isinstance(value, dict):
        out: dict = {}
        for k, v in value.items():
            k, v = scrub(k), scrub_json(v, scrub)
            out[k] = out[k] + v if isinstance(v, int) and isinstance(out.get(k), int) else out.get(k, v)
        return out
    return value


MAPPING_NAME = "pseudonyms.json"


def write_mapping(pseudonyms: Pseudonyms, folder: Path) -> Path:
    """The real name -> pseudonym table, readable by the user only, in `folder` (paths.private: never under the
    dataset folders that get uploaded)."""
    from hive import fileio

    path = folder / MAPPING_NAME
    with fileio.atomic_write(path) as f:
        os.chmod(f.fileno(), 0o600)
        json.dump(pseudonyms.mapping, f, ensure_ascii=False, indent=1)
    return path
