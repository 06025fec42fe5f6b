"""Credentials recognised by where they stand: in a URL, after a key, a flag or a header.

Each rule reads a text and returns the spans to mask (sorted, apart). When unsure
where a value ends, a rule masks more rather than less.
"""

from __future__ import annotations

import re

from rollback_helpers.secrets.view import MASK, Span

# -- URL passwords ------------------------------------------------------------------------------
# scheme://user:  (or JSON-escaped scheme:\/\/user:) — the password starts after the colon.
_URL_HEAD = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:(?://|\\/\\/)"
                       r"(?P<user>[^:/@\s\\\"'<>]*):")
# Where a password cannot reach past: the next URL, a blank line, the end of a quoted string.
_URL_REGION_END = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?://|\\/\\/)|\n[ \t]*\n"
                             r"|\\?[\"'](?=\s|[,}\]]|$)")
# An '@' that a host follows: [IPv6], a name (IDN and underscores included), or nothing before
# a path (@/db?host=/socket); an optional port; then anything a host cannot continue with, so
# "@host.", "@host!", "@host`" and "@host:5432: timeout" all end the password.
_LABEL = r"\w(?:[\w-]*\w)?"
_HOST_AFTER_AT = re.compile(rf"@(?:\[[0-9A-Fa-f:.%]+\]|{_LABEL}(?:\.{_LABEL})*|(?=[/?]))"
                            r"(?::\d{1,5})?(?![\w-])")
_MAX_URL_PASSWORD = 256  # how far a password with spaces or newlines may reach
_PORT_AND_PATH = re.compile(r"\d{0,5}(?:[/?#][\s\S]*)?|[A-Za-z]{1,2}(?:[/?#][\s\S]*)?")


def url_passwords(text: str) -> list[Span]:
    """The password of every URL: up to the last '@' a host follows, or, in a URL that
    names no host (``postgresql://app-user:PW``), up to the next space."""
    spans: list[Span] = []
    pos = 0
    for head in _URL_HEAD.finditer(text):
        if head.start() < pos:
            continue
        stop = _region_end(text, head.end())
        at = _last_host_at(text, head.end(), stop)
        if at is None:
            at = _hostless_end(text, head, stop)
        if at is not None and at > head.end():
            spans.append((head.end(), at))
            pos = at
    return spans


def _region_end(text: str, start: int) -> int:
    limit = min(len(text), start + _MAX_URL_PASSWORD)
    end = _URL_REGION_END.search(text, start, limit)
    return end.start() if end else limit


def _last_host_at(text: str, start: int, stop: int) -> int | None:
    """Index of the last '@' a host follows, before ``stop`` (None: no '@')."""
    found = None
    at = text.find("@", start, stop)
    while at != -1:
        if _HOST_AFTER_AT.match(text, at):
            found = at
        at = text.find("@", at + 1, stop)
    return found


def _hostless_end(text: str, head: re.Match[str], stop: int) -> int | None:
    """Where the password of a URL without '@' ends, or None when what follows the colon is a
    port (``http://localhost:8080/x``), a placeholder or already masked."""
    if "[" in head["user"] or not head["user"]:
        return None
    end = head.end()
    while end < stop and not text[end].isspace():
        end += 1
    value = text[head.end():end]
    if not value or _PORT_AND_PATH.fullmatch(value) or value.startswith(MASK) \
            or not any(ch.isalnum() for ch in value):
        return None
    return end


# -- key=value and key: value -------------------------------------------------------------------
_KEYWORD = re.compile(r"pass(?:word|wd|phrase)|secret|token|api[_-]?key|apikey|access[_-]?key"
                      r"|private[_-]?key|account[_-]?key|signing[_-]?key", re.IGNORECASE)
_SHORT_KEYWORDS = {"pw", "pwd"}  # only as a whole part of a key: DB_PWD, pw, --pwd
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# A key (PGPASSWORD, FLY_API_TOKEN, "password", \"secret\", --access-token), optionally quoted
# as in JSON, then = or :. Any key matches here; is_secret_key then decides. (A keyword inside
# the pattern made long identifier runs quadratic; the possessive ++ keeps this linear.)
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


def is_secret_key(key: str) -> bool:
    """Whether a key names a secret: PGPASSWORD, api-key, dbPwd, DB_PASS, pw (not "upwards")."""
    if _KEYWORD.search(key):
        return True
    parts = [p for p in re.split(r"[_.-]", _CAMEL.sub("_", key).lower()) if p]
    return any(p in _SHORT_KEYWORDS for p in parts) or ("pass" in parts and len(parts) > 1)


def assignments(text: str) -> list[Span]:
    spans: list[Span] = []
    pos = 0
    for key in _KEY_SEP.finditer(text):
        if key.start() < pos or not is_secret_key(key["key"]) or _in_url(text, key.start()):
            continue
        if key["sep"] == ":" and (not _KEYWORD.search(key["key"])
                                  or text.startswith("sha256:", key.end())):
            continue  # app_pw:sha256:…, pwd:/srv: an image's name and digest or a path, not YAML
        span = _value_span(text, key.end(), to_line_end=key["sep"] != "=")
        if span is not None:
            spans.append(span)
            pos = span[1]
    return spans


def _in_url(text: str, at: int) -> bool:
    """Whether ``at`` starts a URL's user (``https://x-access-token:…``): the URL rule's job."""
    return text.endswith(("://", ":\\/\\/"), 0, at)


def secret_flags(text: str) -> list[Span]:
    spans: list[Span] = []
    pos = 0
    for flag in _FLAG_KEY.finditer(text):
        if flag.start() < pos or not is_secret_key(flag["key"]):
            continue
        span = _value_span(text, flag.end(), to_line_end=False)
        if span is not None:
            spans.append(span)
            pos = span[1]
    return spans


def _value_span(text: str, start: int, *, to_line_end: bool) -> Span | None:
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
        return unless_masked(found) if found else None
    spans = [s for m in (quoted, _WORD_VALUE.match(text, start)) if m and (s := unless_masked(m))]
    return max(spans, key=lambda s: s[1]) if spans else None


def unless_masked(found: re.Match[str]) -> Span | None:
    """The span of the match's value ``v``, or None when it is already masked."""
    value = found["v"].rstrip()
    rest = value.replace(f"Secret({MASK})", "").replace(MASK, "")
    if not value or (MASK in value and not any(ch.isalnum() for ch in rest)):
        return None  # already masked (or a Secret's repr)
    return found.start("v"), found.start("v") + len(value)


# -- headers ------------------------------------------------------------------------------------
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer\s+)[A-Za-z0-9_\-.~+/]+=*")
_AUTH_HEADER = re.compile(r"(?i)\b(?P<scheme>authorization\\?[\"']?[ \t]*:[ \t]*\\?[\"']?"
                          r"(?:token|basic)[ \t]+)[^\s\"'\\]+")


def auth_headers(text: str) -> list[Span]:
    return [(m.end("scheme"), m.end()) for m in _AUTH_HEADER.finditer(text)]


def bearer_tokens(text: str) -> list[Span]:
    return [(m.end("scheme"), m.end()) for m in _BEARER.finditer(text)]
