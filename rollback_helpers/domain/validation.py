"""The input types every source shares, and pydantic's errors as the runbook's bad input.

Every input (``runbook.toml``, ``ROLLBACK_*`` variables, notebook parameters,
command-line flags, sandbox scenario files) is parsed once by a pydantic model
built from these types. A failure becomes a :class:`~rollback_helpers.errors.ConfigError`
(exit 2) whose message names the source and the key, says what was wrong and
gives the accepted form::

    Bad input in runbook.toml: 'poll_interval' = 0: must be greater than 0.
    Next: give 'poll_interval' a finite number of seconds > 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from rollback_helpers.errors import ConfigError
from rollback_helpers.secrets import redact

# Seconds may come as an int or a float, never as a bool or a string; NaN and infinity are refused.
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
Text = StrictStr
Switch = StrictBool
PositiveInt = Annotated[StrictInt, Field(gt=0)]
# GitHub refuses a comment body over 65,536 characters: free text stays well under it.
MAX_TEXT = 4000
FreeText = Annotated[StrictStr, Field(max_length=MAX_TEXT)]
# A name that goes into a path, a ref, an argv or an API URL: ASCII letters, digits, - and _ (and
# dots inside), never a flag, a space, a slash or "..". Empty is missing, never a default.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
SafeName = Annotated[StrictStr, Field(pattern=NAME_PATTERN)]
ACCEPTED_NAME = "letters, digits, '-', '_' or '.' (up to 63, starting with a letter or digit)"


def _no_dots(value: str) -> str:
    if ".." in value:
        raise ValueError("must not hold '..'")
    return value


def _repository(value: str) -> str:
    owner, _, name = value.partition("/")
    if not all(re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", part) and part not in (".", "..")
               for part in (owner, name)):
        raise ValueError('must be "owner/name" (letters, digits, -, _ and .)')
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("must be an http(s):// URL")
    return value.rstrip("/")


PathName = Annotated[SafeName, AfterValidator(_no_dots)]
Repository = Annotated[StrictStr, AfterValidator(_repository)]
HttpUrl = Annotated[StrictStr, AfterValidator(_http_url)]

# Sane bounds (seconds): a poll faster than 10 ms or slower than an hour, a wait under a second or
# over a week, is a typo (1e-300 spins a drill at 100 % CPU; 1e308 never polls again).
DAY = 86_400.0
PollSeconds = Annotated[float, Field(ge=0.01, le=3600, allow_inf_nan=False, strict=True)]
WaitSeconds = Annotated[float, Field(ge=1, le=7 * DAY, allow_inf_nan=False, strict=True)]
LeaseSeconds = Annotated[float, Field(ge=10, le=DAY, allow_inf_nan=False, strict=True)]
ShortSeconds = Annotated[float, Field(gt=0, le=600, allow_inf_nan=False, strict=True)]
GraceSeconds = Annotated[float, Field(ge=0, le=DAY, allow_inf_nan=False, strict=True)]

ACCEPTED_SWITCH = "True or False (a real boolean; papermill: -p NAME True, or -y 'NAME: false')"
ACCEPTED_BY_KIND = {
    "bool": ACCEPTED_SWITCH,
    "float": "a finite number",
    "int": "a whole number",
    "str": "a string",
    "tuple": 'a list of strings, e.g. ["a", "b"]',
    "dict": "a table (TOML [section]) or a dict",
}
UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_TYPE_WORDS = {"bool": "bool", "float": "float", "int": "int", "string": "str", "str": "str",
               "tuple": "tuple", "list": "tuple", "dict": "dict", "dataclass": "dict",
               "model": "dict", "mapping": "dict"}


def dotted(loc: tuple[int | str, ...]) -> str:
    """``('environments', 'staging', 'app')`` → ``environments.staging.app``."""
    return ".".join(str(part) for part in loc)


def shown(value: Any) -> str:
    """The bad value as the message shows it: credentials masked, then short (never a whole
    document). Masked first: a URL cut before its ``@host`` no longer shows where its
    password ends, so cutting first would leave the password's head in the message."""
    text = redact(repr(_masked(value)))
    return text if len(text) <= 60 else text[:57] + "..."


def _masked(value: Any) -> Any:
    """``value`` with every string in it redacted as written (before repr escapes it)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_masked(item) for item in value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    return value


def _problem(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind in UNKNOWN:
        return "is not a known key"
    if kind == "string_pattern_mismatch":
        return "is not of the accepted form"
    if kind == "missing":
        return "is required"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"has the wrong type ({type(error['input']).__name__}): {error['msg'].lower()}"
    if kind == "finite_number":
        return "must be a finite number (not NaN or infinity)"
    return error["msg"].replace("Input should be", "must be").replace("Value error, ", "")


def _kind(error: ErrorDetails) -> str:
    first = error["type"].split("_", 1)[0]
    return _TYPE_WORDS.get(first, "")


def bad_input(exc: ValidationError, *, source: str, name: Callable[[str], str] = repr,
              accepted: Mapping[str, str] | None = None, next_step: str = "") -> ConfigError:
    """One ConfigError listing every problem pydantic found, each with its key and accepted form."""
    accepted = accepted or {}
    lines, hints = [], []
    for error in exc.errors(include_url=False):
        key = dotted(tuple(p for p in error["loc"] if not str(p).startswith("function-")))
        value = "" if error["type"] in ("missing",) else f" = {shown(error['input'])}"
        if not key:  # a rule across keys: its message names them
            lines.append(_problem(error))
            continue
        lines.append(f"{name(key)}{value}: {_problem(error)}")
        form = accepted.get(key) or accepted.get(key.rsplit(".", 1)[-1]) \
            or ACCEPTED_BY_KIND.get(_kind(error), "")
        if error["type"] in UNKNOWN:
            form = accepted.get("*", "")
        if form:
            hints.append(f"{name(key)}: {form}" if error["type"] not in UNKNOWN else form)
    what = f"Bad input in {source}: " + "; ".join(lines) + "."
    hint = "Accepted: " + "; ".join(dict.fromkeys(hints)) + "." if hints else ""
    return ConfigError(what, " ".join(part for part in (next_step, hint) if part))

