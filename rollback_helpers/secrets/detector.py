"""The one credential detector: what :func:`redact` masks is what the guard refuses.

:func:`detect` reads a text through a :class:`~rollback_helpers.secrets.view.View`
(values the runbook holds masked first, then disguises undone) and applies every
rule in order, each masking what it finds in what the earlier ones left; it
returns the masked text and the kinds of credential found.
"""

from __future__ import annotations

from collections.abc import Callable

from rollback_helpers.secrets import shapes, tokens
from rollback_helpers.secrets.view import Span, View, decode_and_join, fold_characters

Rule = Callable[[str], list[Span]]

# (what it finds, how); in this order: token shapes before the key=value rule so
# `FLY_API_TOKEN=FlyV1 fm2_…` loses the whole token, not its first word.
RULES: tuple[tuple[str, Rule], ...] = (
    ("a private key", tokens.private_keys),
    ("a Fly.io or GitHub token", tokens.fly_and_github_tokens),
    ("a token of another service (AWS, Slack, Stripe, Google, npm, PyPI, GitLab, a webhook, "
     "a JSON Web Token)", tokens.service_tokens),
    ("a password inside a URL, between user: and @host", shapes.url_passwords),
    ("a line of a .pgpass file (host:port:database:user:…)", tokens.pgpass_lines),
    ("a value given to a name like password, secret, token or api_key", shapes.assignments),
    ("a value after a flag named like password or token", shapes.secret_flags),
    ("a user:secret pair given to -u or --user", tokens.user_flags),
    ("a token in an Authorization header (Bearer, token, Basic)", shapes.auth_headers),
    ("a token in an Authorization header (Bearer, token, Basic)", shapes.bearer_tokens),
    ("a secret-looking word written after the word password (or after token is …)",
     tokens.prose_passwords),
)
KNOWN = "a value the runbook holds as a secret"


def detect(text: str, known: Callable[[View], bool]) -> tuple[str, list[str]]:
    """``text`` with every credential masked, and what kinds were found (never the values).

    ``known`` masks the values the runbook holds, on the text as written.
    """
    view = View(text)
    found = [KNOWN] if known(view) else []
    view.rewrite(fold_characters(view.text))
    view.rewrite(decode_and_join(view.text))
    for kind, rule in RULES:
        seen = view.text
        if view.mask(s for s in rule(seen) if seen[s[0]:s[1]].strip("*")) \
                and kind not in found:
            found.append(kind)
    return view.shown(), found
