"""Values that never render.

A :class:`Secret` holds a password, token or connection string. It shows as
``****`` in ``repr``, ``str``, f-strings, logs, pandas tables and notebook
output; the value comes out only through :meth:`Secret.reveal`, which no output
path calls. :func:`redact` is the second line of defence: it masks the password
in any URL and every value ever wrapped in a ``Secret``, and every error message
and command output the runbook shows passes through it.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "****"

_known: set[str] = set()
_lock = threading.Lock()
# scheme://user:password@host  — the password is whatever sits between ':' and '@'.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.~+/]+=*")
_TOKENISH = re.compile(
    r"\b(gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}|fo1_[A-Za-z0-9_\-]{16,})\b")
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
    """``text`` with every password in a URL, bearer token and known secret masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _TOKENISH.sub(MASK, text)


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
