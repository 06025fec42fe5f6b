"""Values that never render.

A :class:`Secret` holds a password, token or connection string. It shows as
``****`` in ``repr``, ``str``, f-strings, logs, pandas tables and notebook
output; the value comes out only through :meth:`Secret.reveal`, which no output
path calls. :func:`redact` is the second line of defence: it masks every value
ever wrapped in a ``Secret`` and every credential it recognises by its shape
(URL passwords, ``password=``/``token:`` values, service tokens, private keys,
``.pgpass`` lines, passwords in prose), and every error message and command
output the runbook shows passes through it. :func:`find_credentials` names the
credentials in a text, for :func:`rollback_helpers.errors.guard_free_text`, which
refuses them in what an operator types instead of masking them. Both use the
one detector (:mod:`rollback_helpers.secrets.detector`), so whatever one
catches, the other does too.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rollback_helpers.secrets.detector import detect
from rollback_helpers.secrets.view import MASK, View

__all__ = ["MASK", "Secret", "find_credentials", "mask_url", "redact", "remember",
           "token_from_env"]

_known: set[str] = set()
_lock = threading.Lock()
_MIN_REGISTERED_LENGTH = 6  # shorter values would mask ordinary words


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
    ``/``, spaces, newlines, ``:``; the last ``@`` a host follows ends it, whatever
    punctuation follows the host), plain, JSON-escaped (``postgres:\\/\\/u:pw@h``)
    or percent-encoded, and of a URL that names no host; the value of any key naming
    a password, passwd, pwd, pw, secret, token, API, access or private key, written
    ``key=value``, ``key: value``, ``"key": "value"``, ``\\"key\\": \\"value\\"``,
    ``--key value`` (shell, YAML, JSON, libpq ``host=x password=y``, case-insensitive);
    a secret-looking word after "password" in prose; Fly tokens (``FlyV1 fm2_…,fm2_…``,
    bare ``fm1_``/``fm2_``/``fo1_``), GitHub tokens (``ghp_ gho_ ghu_ ghs_ ghr_
    github_pat_``), AWS keys, JSON Web Tokens, Slack, Stripe, Google, npm, PyPI and
    GitLab tokens, webhook paths, private keys, ``.pgpass`` passwords, ``-u user:pw``
    and bearer or ``Authorization`` tokens. Keywords disguised with zero-width
    characters, look-alike letters or a line break are read as what they look like.
    Shell references (``$(gh auth token)``, ``$GH_TOKEN``) are not secrets and stay.
    When unsure where a value ends, it masks more rather than less.
    """
    return detect(text, _mask_known)[0] if text else text


def find_credentials(text: str) -> list[str]:
    """What kinds of credential :func:`redact` would mask in ``text`` (never the values)."""
    return detect(text, _mask_known)[1] if text else []


def _mask_known(view: View) -> bool:
    """Mask every value the runbook holds, longest first; whether one was there."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    found = False
    for value in known:
        if value in view.text:
            spans = []
            at = view.text.find(value)
            while at != -1:
                spans.append((at, at + len(value)))
                at = view.text.find(value, at + len(value))
            found = view.mask(spans) or found
    return found


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
