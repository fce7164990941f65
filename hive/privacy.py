"""Privacy for extracted chats: URLs, e-mail addresses and phone numbers in message text become placeholders, and
other people's names can become stable pseudonyms ("Person 1", ...), also where the text mentions them."""

import re
from typing import Iterable

URL_PLACEHOLDER, EMAIL_PLACEHOLDER, PHONE_PLACEHOLDER = "<URL>", "<EMAIL>", "<PHONE>"

# A URL ends before trailing punctuation that belongs to the sentence ("see https://x.org.")
URL = re.compile(r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\"'.,;:!?)\]}]")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# Digits with the separators people type; whether it is a phone number is decided in _phone. The pattern starts
# with a plain character class (no look-behind) so the regex engine can skip ahead quickly: it runs on every message.
PHONE = re.compile(r"[+(0-9][0-9 \u00a0\u2011().+-]{6,}[0-9](?!\w)")
_DIGIT = re.compile(r"[0-9]")


def _phone(m: "re.Match") -> str:
    # 9-15 digits (8 with a country code) is a phone number; fewer is a date (2024-03-14), a time or an amount.
    text, start = m.group(0), m.start()
    if start and (m.string[start - 1].isalnum() or m.string[start - 1] in "_+"):
        return text     # inside a word or a longer number
    digits = len(_DIGIT.findall(text))
    return PHONE_PLACEHOLDER if (8 if text[0] in "+(" else 9) <= digits <= 15 else text


def strip_urls(text: str) -> str:
    """The original Hive's rule for its plain output: URLs removed, not replaced."""
    return URL.sub("", text)


class Redactor:
    """Replaces the configured kinds ("url", "email", "phone") in a text; cheap substring checks first because
    it runs on every message."""

    def __init__(self, kinds: Iterable[str]):
        kinds = set(kinds)
        self.url, self.email, self.phone = "url" in kinds, "email" in kinds, "phone" in kinds

    def __call__(self, text: str) -> str:
        if self.url and ("://" in text or "www." in text):
            text = URL.sub(URL_PLACEHOLDER, text)
        if self.email and "@" in text:
            text = EMAIL.sub(EMAIL_PLACEHOLDER, text)
        if self.phone:
            text = PHONE.sub(_phone, text)
        return text


class Pseudonyms:
    """Stable pseudonyms: the same name gets the same "Person N" everywhere in a run (numbered in the order the
    names are given), and whole-word mentions of those names in a text are replaced too."""

    def __init__(self, names: Iterable[str], keep: Iterable[str] = ()):
        keep = {k.casefold() for k in keep}
        self.mapping: dict[str, str] = {}
        for name in names:
            if name and name.casefold() not in keep and name not in self.mapping:
                self.mapping[name] = f"Person {len(self.mapping) + 1}"
        # longest first, so "Anu - Office" wins over "Anu"
        alternatives = sorted(self.mapping, key=len, reverse=True)
        self._mentions = (
            re.compile("(?<!\\w)(?:" + "|".join(map(re.escape, alternatives)) + ")(?!\\w)") if alternatives else None
        )

    def name(self, name: str | None) -> str | None:
        return self.mapping.get(name, name) if name is not None else None

    def text(self, text: str) -> str:
        if self._mentions is None:
            return text
        return self._mentions.sub(lambda m: self.mapping[m.group(0)], text)
