"""Credentials recognised by their own shape, wherever they stand, and passwords in prose.

Each rule reads a text and returns the spans to mask (sorted, apart).
"""

from __future__ import annotations

import re

from rollback_helpers.secrets.view import Span

_FLY_PART = r"f[a-z][0-9]_[A-Za-z0-9_+/=-]+"
_FLY_TOKEN = re.compile(rf"(?i)\b(?P<scheme>FlyV1[ \t]+){_FLY_PART}(?:,[ \t]*{_FLY_PART})*")
_FLY_BARE = re.compile(r"(?<![A-Za-z0-9])f[mo][12]_[A-Za-z0-9_+/=-]{16,}")
_GITHUB_TOKEN = re.compile(r"gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}")
# Other services' tokens, by their documented prefixes: Slack, Stripe, Google, npm, PyPI,
# GitLab, SendGrid, OpenAI-style sk-… keys.
_SERVICE_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?:xox[abposr]-[A-Za-z0-9-]{10,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|whsec_[A-Za-z0-9+/=]{16,}|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}"
    r"|pypi-[A-Za-z0-9_-]{40,}|glpat-[A-Za-z0-9_-]{20,}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
    r"|sk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_-]{20,})")
# A webhook URL is its own secret: whoever has it may post. Slack's and Discord's paths.
_WEBHOOK = re.compile(r"(?i)(?:hooks\.slack\.com/(?:services|workflows|triggers)/"
                      r"|discord(?:app)?\.com/api/webhooks/)(?P<v>[A-Za-z0-9/_-]{8,})")
# A JSON Web Token: two base64url JSON objects ({" is eyJ) and a signature, Bearer or not.
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)"
                         r"[A-Z0-9]{16}(?![A-Z0-9])")
# An AWS secret access key: 40 base64 characters, upper and lower case and digits (a SHA-1 in
# hex has no capitals; a path has many slashes).
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_PRIVATE_KEY = re.compile(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_KEY_END = re.compile(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----")
# A ~/.pgpass line: host:port:database:user:password (\: and \\ escaped in the password),
# also as the tail of a path or a quoted value.
_PGPASS = re.compile(r"(?<![^\s/'\"=(\[])(?P<host>[\w.-]+|\*):(?P<port>\d{1,5}|\*):(?P<db>[^\s:]+):"
                     r"(?P<user>[^\s:]+):(?P<v>(?:\\.|[^\s:\\])+)(?=\s|$)")
_HEX_FIELD = re.compile(r"[0-9A-Fa-f]{1,4}|\*")
# curl -u user:password, --user user:password
_USER_FLAG = re.compile(r"(?<!\S)(?:-u|--user)(?:[ \t]+|=)[^\s:]+:(?P<v>\S+)")
# "password hunter22", "the password for app-user is S3cr3t!", "token is abc123…" in prose.
_PROSE = re.compile(
    r"(?i)(?<![\w-])(?P<kw>pass(?:word|wd|phrase)|secret|token|api[ _-]?key|access[ _-]?key"
    r"|pwd|pw)s?(?![\w-])(?:[ \t]++(?:for|of)[ \t]++[^\s:=]{1,64}+)?"
    r"(?:[ \t]*+[:=][ \t]*+|[ \t]++(?P<conn>(?:is|was)[ \t]++)?)(?P<v>\S{1,256}+)")
_PASSWORD_WORDS = ("pass",)  # after these a secret-looking word is a password, "is" or not
_SENTENCE_END = ".,;!?)]}'\""


def fly_and_github_tokens(text: str) -> list[Span]:
    spans = [(m.end("scheme"), m.end()) for m in _FLY_TOKEN.finditer(text)]
    spans += [m.span() for rule in (_FLY_BARE, _GITHUB_TOKEN) for m in rule.finditer(text)]
    return _apart(spans)


def service_tokens(text: str) -> list[Span]:
    spans = [m.span() for rule in (_SERVICE_TOKEN, _JWT, _AWS_KEY_ID) for m in rule.finditer(text)]
    spans += [m.span("v") for m in _WEBHOOK.finditer(text)]
    spans += [m.span() for m in _AWS_SECRET.finditer(text) if _looks_random(m[0])]
    return _apart(spans)


def _looks_random(value: str) -> bool:
    return (any(c.isupper() for c in value) and any(c.islower() for c in value)
            and any(c.isdigit() for c in value) and value.count("/") < 3)


def _apart(spans: list[Span]) -> list[Span]:
    """Sorted, overlapping spans joined."""
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def private_keys(text: str) -> list[Span]:
    """A private key from its BEGIN line to its END line (or to the end of the text)."""
    spans: list[Span] = []
    pos = 0
    while begin := _PRIVATE_KEY.search(text, pos):
        end = _PRIVATE_KEY_END.search(text, begin.end())
        spans.append((begin.start(), end.end() if end else len(text)))
        pos = spans[-1][1]
        if not end:
            break
    return spans


def pgpass_lines(text: str) -> list[Span]:
    spans = []
    for line in _PGPASS.finditer(text):
        fields = line.group("host", "port", "db", "user", "v")
        if not all(_HEX_FIELD.fullmatch(f) for f in fields):  # IPv6 addresses, MACs, times
            spans.append(line.span("v"))
    return spans


def user_flags(text: str) -> list[Span]:
    return [m.span("v") for m in _USER_FLAG.finditer(text)]


def prose_passwords(text: str) -> list[Span]:
    """A secret-looking word after "password" (or after "token is", "secret was", …)."""
    spans: list[Span] = []
    for found in _PROSE.finditer(text):
        value = found["v"]
        plain = value.rstrip(_SENTENCE_END)
        password = found["kw"].lower().startswith(_PASSWORD_WORDS)
        if found["conn"] or password:
            keep = _secret_looking(plain)
        else:
            keep = len(plain) >= 16 and _secret_looking(plain)
        if keep and "*" not in plain:
            spans.append(found.span("v"))
    return spans


def _secret_looking(word: str) -> bool:
    """Six characters or more with a digit or a symbol: "S3cr3t", "hunter22", not "reset"."""
    return len(word) >= 6 and any(c.isdigit() or not (c.isalnum() or c in "-_'") for c in word)
