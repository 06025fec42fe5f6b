"""Values that never render.

A :class:`Secret` holds a password, token or connection string. It shows as
``****`` in ``repr``, ``str``, f-strings, logs, pandas tables and notebook
output; the value comes out only through :meth:`Secret.reveal`, which no output
path calls. :func:`redact` is the second line of defence: it masks every value
ever wrapped in a ``Secret`` and every credential it recognises by its shape
(URL passwords, ``password=``/``token:`` values, Fly, GitHub and bearer tokens),
and every error message and command output the runbook shows passes through it.
:func:`find_credentials` names the credentials in a text by shape, for
:func:`rollback_helpers.errors.guard_free_text`, which refuses them in what an
operator types instead of masking them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "****"

_known: set[str] = set()
_lock = threading.Lock()
_MIN_REGISTERED_LENGTH = 6  # shorter values would mask ordinary words

# -- URL passwords ------------------------------------------------------------------------------
# scheme://user:  (or JSON-escaped scheme:\/\/user:) — the password starts after the colon.
_URL_HEAD = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:(?://|\\/\\/)"
                       r"[^:/@\s\\\"'<>]*:")
# Where a password cannot reach past: the next URL, a blank line, the end of a quoted string.
_URL_REGION_END = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?://|\\/\\/)|\n[ \t]*\n"
                             r"|\\?[\"'](?=\s|[,}\]]|$)")
# An '@' that a host follows: a name or [IPv6], an optional port, then the end of the authority.
_HOST_AFTER_AT = re.compile(
    r"@(?:\[[0-9A-Fa-f:.%]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::\d{1,5})?(?=$|[/?#\s\"'\\,;)<>\]])")
_MAX_URL_PASSWORD = 256  # how far a password with spaces or newlines may reach

# -- key=value and key: value -------------------------------------------------------------------
_KEYWORD = re.compile(r"pass(?:word|wd)|secret|token|api[_-]?key|apikey|access[_-]?key"
                      r"|private[_-]?key", re.IGNORECASE)
# A key (PGPASSWORD, FLY_API_TOKEN, "password", \"secret\", --access-token), optionally quoted
# as in JSON, then = or :. Any key matches here; _KEYWORD then decides. (A keyword inside the
# pattern made long identifier runs quadratic; the possessive ++ keeps this linear.)
_KEY_SEP = re.compile(r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]++)(?:\\?[\"'])?"
                      r"(?P<sep>[ \t]*+[=:][ \t]*+)")
# --password VALUE, --access-token VALUE: a flag whose value follows after a space.
_FLAG_KEY = re.compile(r"(?<![A-Za-z0-9_.-])--(?P<key>[A-Za-z0-9_.-]++)[ \t]++")
_QUOTED_VALUES = (  # bounded, so an unclosed quote cannot make a long text quadratic
    re.compile(r'\\"(?P<v>[^\n]{0,4096}?)(?<!\\)\\"'),            # \"…\" inside a JSON string
    re.compile(r'"(?P<v>(?:[^"\\]|\\[\s\S]){0,4096})"'),          # "…" JSON, YAML, shell
    re.compile(r"'(?P<v>(?:[^'\\]|\\[\s\S]|''){0,4096})'"),       # '…' shell, libpq, YAML
)
_YAML_BLOCK = re.compile(r"[|>][-+0-9]*[ \t]*\n(?P<v>(?:[ \t]+[^\n]*(?:\n|$))+)")
# $(gh auth token), ${TOKEN}, $GH_TOKEN: a reference to a secret, not one; shown as written.
_SHELL_REFERENCE = re.compile(r"(?:\$\([^()\n]*\)|\$\{[A-Za-z_][A-Za-z0-9_]*\}"
                              r"|\$[A-Z_][A-Z0-9_]*)(?=$|[\s\"'),;`])")  # ` ends a Markdown code span
# A shell word: quoted and bare pieces up to a bare space ('a'"'"'b' is one value); a quote
# that never closes is an ordinary character, as in libpq (password="x).
_WORD_VALUE = re.compile(r"""(?P<v>(?:'[^']{0,4096}'|"(?:[^"\\]|\\[\s\S]){0,4096}"|\\[\s\S]"""
                         r"""|[^\s\\]|\\$)+)""")
_LINE_VALUE = re.compile(r"(?P<v>[^\r\n]+)")                    # YAML, prose: the rest of the line

# -- token shapes -------------------------------------------------------------------------------
_FLY_PART = r"f[a-z][0-9]_[A-Za-z0-9_+/=-]+"
_FLY_TOKEN = re.compile(rf"(?i)\b(?P<scheme>FlyV1[ \t]+){_FLY_PART}(?:,[ \t]*{_FLY_PART})*")
_FLY_BARE = re.compile(r"(?<![A-Za-z0-9])f[mo][12]_[A-Za-z0-9_+/=-]{16,}")
_GITHUB_TOKEN = re.compile(r"gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}")
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer\s+)[A-Za-z0-9_\-.~+/]+=*")
_AUTH_HEADER = re.compile(r"(?i)\b(?P<scheme>authorization\\?[\"']?[ \t]*:[ \t]*\\?[\"']?"
                          r"(?:token|basic)[ \t]+)[^\s\"'\\]+")


class Secret:
    """A string that renders as ``****``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember(value)

    def reveal(self) -> str:
        """The real value. Call only where it is handed to a library, never to print."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def _repr_html_(self) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled (it would leave the kernel)")


def remember(value: str) -> None:
    """Mask this value wherever :func:`redact` sees it from now on."""
    if value and len(value) >= _MIN_REGISTERED_LENGTH:
        with _lock:
            _known.add(value)
        parts = urlsplit(value) if "://" in value else None
        if parts is not None and parts.password:
            remember(parts.password)


def redact(text: str) -> str:
    """``text`` with every credential it can recognise masked as ``****``.

    Masked: every value ever wrapped in a :class:`Secret` (or passed to
    :func:`remember`); the password of any URL, whatever it contains (``@``,
    ``/``, spaces, newlines, ``:``; the last ``@`` a host follows ends it), plain
    or JSON-escaped (``postgres:\\/\\/u:pw@h``); the value of any key naming a
    password, passwd, secret, token, API, access or private key, written
    ``key=value``, ``key: value``, ``"key": "value"``, ``\\"key\\": \\"value\\"``,
    ``--key value`` (shell, YAML, JSON, libpq ``host=x password=y``, case-insensitive);
    Fly tokens (``FlyV1 fm2_…,fm2_…``, bare ``fm1_``/``fm2_``/``fo1_``), GitHub
    tokens (``ghp_ gho_ ghu_ ghs_ ghr_ github_pat_``) and bearer or ``Authorization``
    tokens. Shell references (``$(gh auth token)``, ``$GH_TOKEN``) are not secrets
    and stay. When unsure where a value ends, it masks more rather than less.
    """
    for _, step in _STEPS:
        if not text:
            return text
        text = step(text)
    return text


def find_credentials(text: str) -> list[str]:
    """What kinds of credential :func:`redact` would mask in ``text`` (never the values)."""
    found = []
    for kind, step in _STEPS:
        masked = step(text)
        if masked != text:
            found.append(kind)
            text = masked
    return found


def _mask_url_passwords(text: str) -> str:
    out: list[str] = []
    pos = 0
    for head in _URL_HEAD.finditer(text):
        if head.start() < pos:
            continue
        at = _last_host_at(text, head.end())
        if at is None:
            continue
        out += [text[pos:head.end()], MASK]
        pos = at
    return "".join(out) + text[pos:]


def _last_host_at(text: str, start: int) -> int | None:
    """Index of the last '@' a host follows, before the password's reach ends (None: no '@')."""
    limit = min(len(text), start + _MAX_URL_PASSWORD)
    end = _URL_REGION_END.search(text, start, limit)
    stop = end.start() if end else limit
    found = None
    at = text.find("@", start, stop)
    while at != -1:
        if _HOST_AFTER_AT.match(text, at):
            found = at
        at = text.find("@", at + 1, stop)
    return found


def _mask_assignments(text: str) -> str:
    out: list[str] = []
    pos = 0
    for key in _KEY_SEP.finditer(text):
        if key.start() < pos or not _KEYWORD.search(key["key"]) or _in_url(text, key.start()):
            continue
        span = _value_span(text, key.end(), to_line_end=key["sep"] != "=")
        if span is not None:
            out += [text[pos:span[0]], MASK]
            pos = span[1]
    return "".join(out) + text[pos:]


def _in_url(text: str, at: int) -> bool:
    """Whether ``at`` starts a URL's user (``https://x-access-token:…``): the URL rule's job."""
    return text.endswith(("://", ":\\/\\/"), 0, at)


def _mask_secret_flags(text: str) -> str:
    out: list[str] = []
    pos = 0
    for flag in _FLAG_KEY.finditer(text):
        if flag.start() < pos or not _KEYWORD.search(flag["key"]):
            continue
        span = _value_span(text, flag.end(), to_line_end=False)
        if span is not None:
            out += [text[pos:span[0]], MASK]
            pos = span[1]
    return "".join(out) + text[pos:]


def _value_span(text: str, start: int, *, to_line_end: bool) -> tuple[int, int] | None:
    """Where the value starting at ``start`` lies, or None when there is nothing to mask.

    After ``key:`` or ``key = `` (YAML, JSON, INI, prose) a quoted value ends at its
    closing quote, a YAML block at its last indented line, a bare one at the end of
    the line. After ``key=`` or ``--key`` (shell, libpq) the value is a shell word
    (up to a bare space), or a libpq quoted string, whichever reaches further.
    """
    if _SHELL_REFERENCE.match(text, start):
        return None
    quoted = next((m for q in _QUOTED_VALUES if (m := q.match(text, start))), None)
    if to_line_end:
        found = quoted or _YAML_BLOCK.match(text, start) or _LINE_VALUE.match(text, start)
        return _unless_masked(found) if found else None
    spans = [s for m in (quoted, _WORD_VALUE.match(text, start)) if m and (s := _unless_masked(m))]
    return max(spans, key=lambda s: s[1]) if spans else None


def _unless_masked(found: re.Match[str]) -> tuple[int, int] | None:
    value = found["v"].rstrip()
    rest = value.replace(f"Secret({MASK})", "").replace(MASK, "")
    if not value or (MASK in value and not any(ch.isalnum() for ch in rest)):
        return None  # already masked (or a Secret's repr)
    return found.start("v"), found.start("v") + len(value)


def _mask_known(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def _mask_tokens(text: str) -> str:
    text = _FLY_TOKEN.sub(lambda m: m["scheme"] + MASK, text)
    text = _FLY_BARE.sub(MASK, text)
    return _GITHUB_TOKEN.sub(MASK, text)


def _mask_bearer(text: str) -> str:
    text = _AUTH_HEADER.sub(lambda m: m["scheme"] + MASK, text)
    return _BEARER.sub(lambda m: m["scheme"] + MASK, text)


# Applied in this order: exact known values first, token shapes before the key=value rule
# so `FLY_API_TOKEN=FlyV1 fm2_…` loses the whole token, not its first word.
_STEPS: tuple[tuple[str, Callable[[str], str]], ...] = (  # (what it finds, how it masks)
    ("a value the runbook holds as a secret", _mask_known),
    ("a Fly.io or GitHub token", _mask_tokens),
    ("a password inside a URL, between user: and @host", _mask_url_passwords),
    ("a value given to a name like password, secret, token or api_key", _mask_assignments),
    ("a value after a flag named like password or token", _mask_secret_flags),
    ("a token in an Authorization header (Bearer, token, Basic)", _mask_bearer),
)


def mask_url(url: str | Secret) -> str:
    """A connection string fit to show: user and host kept, password as ``****``."""
    raw = url.reveal() if isinstance(url, Secret) else url
    parts = urlsplit(raw)
    if parts.password is None:
        return redact(raw)
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"))


def token_from_env(env: dict[str, str], *names: str) -> Secret | None:
    """The first non-empty variable of ``names``, as a Secret."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return Secret(value)
    return None
