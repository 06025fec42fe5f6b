"""The text as the credential rules read it, and the masks they leave on the original.

The rules never see the original directly. They read a *view*: the original with
the values already masked as ``****``, zero-width characters removed, look-alike
letters folded (NFKC, and Cyrillic or Greek letters that read as Latin ones),
percent-encoded URLs decoded and a keyword broken across lines joined. Each
character of the view remembers which span of the original it stands for, so a
rule's match in the view masks exactly the original characters behind it, the
zero-width and look-alike ones included, and what is shown keeps every other
character as it was written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from itertools import chain

MASK = "****"

Span = tuple[int, int]
Edit = tuple[int, int, str]  # (start, end, replacement) in the view


class View:
    """A rewritten copy of a text whose every character maps back to the original."""

    def __init__(self, original: str) -> None:
        self.original = original
        self.text = original
        self._lo: list[int] | None = None  # None while the view is still the original
        self._hi: list[int] = []
        self.masks: list[Span] = []  # spans of the original to show as MASK

    def mask(self, spans: Iterable[Span]) -> bool:
        """Mask these spans of the view (sorted, apart); whether there was any."""
        return self._edit([(start, end, MASK) for start, end in spans], mask=True)

    def rewrite(self, edits: Iterable[Edit]) -> None:
        """Replace spans of the view (sorted, apart) for reading only; what is shown keeps them."""
        self._edit(list(edits), mask=False)

    def shown(self) -> str:
        """The original with every masked span as MASK (overlapping masks become one)."""
        if not self.masks:
            return self.original
        out: list[str] = []
        pos = 0
        merged: list[list[int]] = []
        for start, end in sorted(self.masks):
            if merged and start < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            out += [self.original[pos:start], MASK]
            pos = end
        return "".join(out) + self.original[pos:]

    def _edit(self, edits: list[Edit], *, mask: bool) -> bool:
        if not edits:
            return False
        text = self.text
        if self._lo is None:
            self._lo, self._hi = list(range(len(text))), list(range(1, len(text) + 1))
        lo, hi = self._lo, self._hi
        texts: list[str] = []
        los: list[list[int]] = []
        his: list[list[int]] = []
        pos = 0
        for start, end, new in edits:
            first, last = lo[start], hi[end - 1]
            texts += [text[pos:start], new]
            los += [lo[pos:start], [first] * len(new)]
            his += [hi[pos:start], [last] * len(new)]
            if mask:
                self.masks.append((first, last))
            pos = end
        texts.append(text[pos:])
        los.append(lo[pos:])
        his.append(hi[pos:])
        self.text = "".join(texts)
        self._lo, self._hi = list(chain.from_iterable(los)), list(chain.from_iterable(his))
        return True


# -- reading past disguises ---------------------------------------------------------------------
# Letters of other scripts that read as Latin ones (Unicode's confusables, the common few).
_LOOKALIKE = dict(zip(
    "аеорсухѕіјԁԝкһԛӏАВЕКМНОРСТХЅІЈοαρκινυτΟΑΒΕΖΗΙΚΜΝΡΤΥΧıɑ",
    "aeopcyxsijdwkhqlABEKMHOPCTXSIJoapkivutOABEZHIKMNPTYXia", strict=True))
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


def _folded(char: str) -> str:
    """How ``char`` reads: '' for an invisible one, its Latin look-alike, or its NFKC form."""
    if char in _LOOKALIKE:
        return _LOOKALIKE[char]
    category = unicodedata.category(char)
    if category == "Cf" or char == "\u034f":  # zero-width spaces and joiners, soft hyphen, marks
        return ""
    if char.isspace():
        return " "
    folded = unicodedata.normalize("NFKC", char)
    if any(ch.isspace() or unicodedata.combining(ch) for ch in folded):
        return char  # an accent that NFKC spreads over a space and a combining mark
    return _LOOKALIKE.get(folded, folded) if len(folded) == 1 else folded


def fold_characters(text: str) -> list[Edit]:
    """Edits that make disguised letters read as what they look like."""
    edits = []
    for found in _NOT_ASCII.finditer(text):
        folded = _folded(found[0])
        if folded != found[0]:
            edits.append((found.start(), found.end(), folded))
    return edits


# A whole URL percent-encoded (postgresql%3A%2F%2Fuser%3Apw%40host): decoded to be read.
_ENCODED_URL = re.compile(r"(?i)(?<![A-Za-z0-9+.-])[a-z][a-z0-9+.-]*%3A%2F%2F[^\s\"'<>]*")
_ENCODED_CHAR = re.compile(r"(?i)%(?:3A|2F|40|3F|3D|26|25|20)")
# A keyword a terminal or an editor broke across lines: pass\nword, pass-\nword, PGPASS\r\nWORD.
_BREAK = r"(?:-?\r?\n[ \t]*)?"
_BROKEN_KEYWORD = re.compile("(?i)" + "|".join(
    _BREAK.join(word) for word in ("password", "passwd", "passphrase", "secret", "token",
                                   "apikey", "api_key", "private_key", "access_key")))
_LINE_BREAK = re.compile(r"-?\r?\n[ \t]*")


def decode_and_join(text: str) -> list[Edit]:
    """Edits that decode percent-encoded URLs and join keywords broken across lines."""
    edits: list[Edit] = []
    if "%" in text:
        for url in _ENCODED_URL.finditer(text):
            edits += [(c.start(), c.end(), chr(int(c[0][1:], 16)))
                      for c in _ENCODED_CHAR.finditer(text, url.start(), url.end())]
    if "\n" in text:
        for word in _BROKEN_KEYWORD.finditer(text):
            edits += [(b.start(), b.end(), "")
                      for b in _LINE_BREAK.finditer(text, word.start(), word.end())]
    return sorted(edits)
