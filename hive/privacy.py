"""Privacy for extracted chats: URLs, e-mail addresses, phone numbers, IBANs and card numbers in message text become
placeholders, and other people's names can become stable pseudonyms ("Person 1", ...), also where a text mentions
them. README.md, section Privacy, lists what is caught and what is not, with examples.

Every pattern runs in time linear in the text: a pattern can only start where a token starts (a look-behind rejects
positions inside one), and its repetitions are separated by characters they cannot hold, so a failed attempt never
re-reads more than its own token. Numbers are found as runs of digit groups that are cut and judged in Python, not by
nested regex repetition (the first phone pattern took 57 s on a 60 KB line of digits; bench/bench_redact.py).
"""

import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional

PLACEHOLDERS = {"url": "<URL>", "email": "<EMAIL>", "phone": "<PHONE>", "iban": "<IBAN>", "card": "<CARD>"}
KINDS = tuple(PLACEHOLDERS)

# --- URLs and e-mail addresses -------------------------------------------------------------------------------------

# A URL ends before punctuation that belongs to the sentence ("see https://x.org.", "(www.x.org)").
_TAIL = r"(?:[^\s<>\"]*[^\s<>\"'.,;:!?)\]}*])?"
# any scheme (https, ftp, HTTPS, spotify, ...) or www.
URL = re.compile(rf"(?:(?<![\w+.-])[a-z][a-z0-9+.-]{{1,20}}://|(?<![\w.-])www\d{{0,3}}\.){_TAIL}", re.I)
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
# Top-level domains recognised without a scheme. Two-letter ones that are also words or file extensions
# ("ok.so", "yes.it", "main.py", "notes.md") count only when a path follows ("t.me/x", "youtu.be/x").
_GENERIC = ("com net org edu gov mil int info biz name pro mobi asia xyz top site online club shop store blog app dev "
            "page live news tech cloud art design space website fun wiki social link")
_WEAK = set("am as at be by do id im in is it me ms my no so to us pa ma la ad al py sh md rs pl ps pm mk ml cc"
            .split())
DOMAIN = re.compile(rf"(?<![\w.@/+-])(?:{_LABEL}\.)+(?P<tld>{'|'.join(_GENERIC.split())}|[a-z]{{2}})(?![\w-])"
                    rf"(?P<path>(?::\d{{1,5}})?/{_TAIL})?", re.I)
EMAIL = re.compile(rf"(?<![\w.+-])[\w.+-]+@(?:{_LABEL}\.)+[^\W\d_]{{2,63}}(?![\w-])", re.I)
_URL_PLACEHOLDER = re.compile(r"<URL>")


def _domain(m: "re.Match", replacement: str) -> str:
    return replacement if m["path"] or m["tld"].lower() not in _WEAK else m[0]


def strip_urls(text: str) -> str:
    """The original Hive's rule for its plain output and the sliding mode: URLs removed, not replaced (also the
    <URL> that redaction left)."""
    if "." in text or "<URL>" in text:
        text = DOMAIN.sub(lambda m: _domain(m, ""), URL.sub("", _URL_PLACEHOLDER.sub("", text)))
    return text


# --- IBANs ---------------------------------------------------------------------------------------------------------

IBAN = re.compile(r"(?<![^\W_])[a-z]{2}\d{2}(?:[ \u00a0-]?[a-z0-9]){11,30}(?![^\W_])", re.I)


def _iban_ok(code: str) -> bool:
    """ISO 13616: 15-34 characters whose rearranged number leaves 1 modulo 97."""
    code = code.upper()
    if not (15 <= len(code) <= 34 and code[:2].isalpha() and code[2:4].isdigit() and code.isascii()):
        return False
    return int("".join(str(int(c, 36)) for c in code[4:] + code[:4])) % 97 == 1


def _iban(m: "re.Match") -> str:
    # The pattern is greedy and may run into the next words ("... 32 is mine"): the longest prefix that ends where a
    # group ends and passes the checksum is the IBAN.
    text = m[0]
    ends = [i for i in range(len(text)) if i + 1 == len(text) or not text[i + 1].isalnum()]
    for end in reversed(ends):
        if _iban_ok("".join(c for c in text[:end + 1] if c.isalnum())):
            return PLACEHOLDERS["iban"] + text[end + 1:]
    return text


# --- Phone and card numbers ----------------------------------------------------------------------------------------

_SEPS = " \u00a0\u202f.\\-/\u2010-\u2015"
# A run of digit groups joined by single separators; "+" and "(" may open a group, ")" may close one.
NUMBER = re.compile(rf"[+(]{{0,2}}\d[\d()]*(?:[{_SEPS}][+(]{{0,2}}\d[\d()]*)*")
_SPLIT = re.compile(rf"([{_SEPS}])")
_DIGITS = re.compile(r"\D+")
_ANY_DIGIT = re.compile(r"\d")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015"), "-")
_CURRENCY = set("$€£¥₹₩₽₺₪฿₫₦₱¢")


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _is_date(a: str, b: str, c: str) -> bool:
    """d-m-y, m-d-y (year of 2 or 4 digits) or y-m-d."""
    if len(a) == 4:
        return 1 <= int(b) <= 12 and 1 <= int(c) <= 31 and len(b) <= 2 and len(c) <= 2
    if len(a) > 2 or len(b) > 2 or len(c) not in (2, 4):
        return False
    x, y = int(a), int(b)
    return 1 <= min(x, y) <= 12 and 1 <= max(x, y) <= 31


def _ordinary(digits: list[str], seps: list[str], international: bool) -> list[bool]:
    """Which groups are part of a date (14.03.2024, 2024-03-14, 3/14/24), a decimal (3.14159), a dotted amount or
    address (1.000.000.000, 192.168.0.1): chains of groups joined by one repeated separator."""
    out = [False] * len(digits)
    i = 0
    while i < len(digits):
        j = i
        while j < len(seps) and seps[j] == seps[i] and seps[i] in "./-":
            j += 1
        chain = digits[i:j + 1]
        if j > i:
            sep = seps[i]
            if len(chain) == 3 and sep in "./-" and _is_date(*chain):
                out[i:j + 1] = [True] * len(chain)
            elif sep == "." and not international and (
                    len(chain) == 2 or (len(chain[0]) <= 3 and all(len(g) == 3 for g in chain[1:]))):
                out[i:j + 1] = [True] * len(chain)
        i = j + 1
    return out


def _card(groups: list[str], digits: list[str], seps: list[str]) -> bool:
    number = "".join(digits)
    return (13 <= len(number) <= 19 and number[0] in "23456" and len(groups) <= 5 and len(set(seps)) <= 1
            and set(seps) <= {" ", "-"} and all(g.isdigit() for g in groups) and _luhn(number))


def _phone(groups: list[str], digits: list[str], seps: list[str], before: str) -> bool:
    """Whether digit groups are one phone number (see README.md, Privacy, for the shapes)."""
    number = "".join(digits)
    n = len(number)
    if groups[0].startswith(("+", "(+")):
        trunk = sum(1 for g in groups[1:] if g.startswith("(0)"))      # +44 (0)20 ...
        return 8 <= n - trunk <= 15
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
    run, text = m[0], m.string
    if len(run) < 8:                                     # too short for either: most numbers in a chat end here
        return run
    parts = _SPLIT.split(run)
    groups, seps = parts[0::2], [s.translate(_DASHES) for s in parts[1::2]]
    # An unbalanced parenthesis belongs to the sentence: "(call 07700 900123)".
    lead = trail = ""
    if groups[-1].endswith(")") and groups[-1].count(")") > groups[-1].count("("):
        trail, groups[-1] = ")", groups[-1][:-1]
    if groups[0].startswith("(") and groups[0].count("(") > groups[0].count(")"):
        lead, groups[0] = "(", groups[0][1:]
    before = text[m.start() - 1] if m.start() else " "
    after = text[m.end()] if m.end() < len(text) else " "
    digits = [_DIGITS.sub("", g) for g in groups] if "(" in run or ")" in run or "+" in run else groups
    skip = _ordinary(digits, seps, groups[0].startswith(("+", "(+")))
    # A group glued to a word is part of it ("B12 +44 ...", "iPhone15 07700 ...", "1990s"), and one after a
    # currency sign or before a percent sign is an amount.
    if before.isalnum() or before == "_" or before in _CURRENCY:
        skip[0] = True
    if after.isalnum() or after == "_" or after in _CURRENCY or after == "%":
        skip[-1] = True
    if before in _CURRENCY:                              # £1 000 000: the thousands that follow
        for i in range(1, len(groups)):
            if len(digits[i]) != 3 or seps[i - 1] not in " .":
                break
            skip[i] = True
    found, i = [], 0
    while i < len(groups):
        if skip[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(groups) and not skip[j + 1]:
            j += 1
        found += _segment(groups, digits, seps, i, j, before if i == 0 else seps[i - 1], card, phone)
        i = j + 1
    if not found:
        return run
    spans = {a: (b, placeholder) for a, b, placeholder in found}
    out, k = [lead], 0
    while k < len(groups):
        if k in spans:
            k, placeholder = spans[k]
            out.append(placeholder)
        else:
            out.append(groups[k])
        k += 1
        if k < len(groups):
            out.append(seps[k - 1])
    return "".join(out) + trail


# A phone number has at most this many groups; longer stretches of numbers are searched from "+" only, so that the
# work per group stays constant whatever the input.
_MAX_GROUPS, _MAX_SEARCH = 8, 64


def _segment(groups, digits, seps, i: int, j: int, before: str, card: Optional[str], phone: Optional[str]) -> list:
    """[(first group, last group, placeholder)] for groups i..j. The whole is a card or phone number, or else phone
    numbers are searched from the groups that open one ("+", "(", a leading 0, the one after a number found),
    longest first; not from any group, or 4532 1234 5678 9010 (no card) would lose its first 12 digits."""
    g, d, s = groups[i:j + 1], digits[i:j + 1], seps[i:j]
    if card and _card(g, d, s):
        return [(i, j, card)]
    if not phone:
        return []
    if _phone(g, d, s, before):
        return [(i, j, phone)]
    found, a = [], i
    openers = "+" if j - i >= _MAX_SEARCH else "+(0"
    while a <= j:
        if groups[a][0] in openers or (found and found[-1][1] == a - 1):
            n, ends = 0, []
            for b in range(a, min(j, a + _MAX_GROUPS - 1) + 1):
                if b > a and groups[b][0] == "+":
                    break
                n += len(digits[b])
                if n > 17:
                    break
                if n >= 8 and b > a:
                    ends.append(b)
            # longest first, but one that ends where another number starts before any other: "+61 4 1234 5678 0412 ..."
            ends.sort(key=lambda b: (b == j or groups[b + 1][0] in "+(0", b), reverse=True)
            b = next((b for b in ends
                      if _phone(groups[a:b + 1], digits[a:b + 1], seps[a:b], before if a == 0 else seps[a - 1])), None)
            if b is not None:
                found.append((a, b, phone))
                a = b + 1
                continue
        a += 1
    return found


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
        if self.url and ("://" in text or "." in text):
            text = URL.sub(PLACEHOLDERS["url"], text)
        if self.email and "@" in text:
            text = EMAIL.sub(PLACEHOLDERS["email"], text)
        if self.url and "." in text:
            text = DOMAIN.sub(self._domain, text)
        if (self.iban or self.card or self.phone) and _ANY_DIGIT.search(text):
            if self.iban:
                text = IBAN.sub(_iban, text)
            if self.card or self.phone:
                text = NUMBER.sub(self._numbers, text)
        return text

    def _domain(self, m: "re.Match") -> str:
        return _domain(m, PLACEHOLDERS["url"])

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
_SENTENCE_START = re.compile(r"(?:^|[.!?\n])\s*$")


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
        alternatives = sorted(self._mentions, key=len, reverse=True)    # "Anu - Office" before "Anu"
        self._pattern = (re.compile("(?<![\\w@])@?(?:" + "|".join(map(re.escape, alternatives)) + ")(?!\\w)", re.I)
                         if alternatives else None)

    def name(self, name: Optional[str]) -> Optional[str]:
        return self.mapping.get(name, name) if name is not None else None

    def label(self, text: str) -> str:
        """A chat or file name: the pseudonym when it is exactly a name, else its mentions replaced."""
        return self.mapping.get(text) or self.text(text)

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(self._replace, text)

    def _replace(self, m: "re.Match") -> str:
        found = m[0]
        at = found.startswith("@")
        word = found[1:] if at else found
        pseudonym, common = self._mentions[word.casefold()]
        if common and not at and not (word[:1].isupper() and word[1:] == word[1:].lower()
                                      and not _SENTENCE_START.search(m.string, 0, m.start())):
            return found
        return ("@" if at else "") + pseudonym


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
