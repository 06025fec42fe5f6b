"""Secrets never render: the Secret type, redact as the second line of defence, tokens from env,
and credentials refused in free text."""

from __future__ import annotations

import io
import json
import logging
import pickle
import re
import shlex
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rollback_helpers import secrets as secrets_module
from rollback_helpers.errors import BadInput, CommandFailed, RollbackError, guard_free_text
from rollback_helpers.secrets import (
    MASK,
    Secret,
    mask_url,
    redact,
    remember,
    token_from_env,
)

PASSWORD = "Xq7-unit-test-pw"


@contextmanager
def forgetting_new_secrets() -> Iterator[None]:
    """Values remembered inside are forgotten after, so generated ones cannot mask other tests."""
    with secrets_module._lock:
        before = set(secrets_module._known)
    try:
        yield
    finally:
        with secrets_module._lock:
            secrets_module._known.intersection_update(before)


@pytest.fixture
def log_output() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """The papermill logger as the command line sets it up (``quiet_papermill_logs``: the
    package's own redacting handler), writing to a buffer instead of the terminal."""
    from rollback_helpers.run.archive import quiet_papermill_logs

    logger = logging.getLogger("papermill")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    quiet_papermill_logs()
    handler = logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    try:
        yield logger, stream
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


# -- Secret -------------------------------------------------------------------------------------
def test_secret_renders_as_mask_everywhere() -> None:
    """repr, str, format, f-strings, %-formatting and notebook HTML all show ****."""
    secret = Secret(PASSWORD)
    renderings = [repr(secret), str(secret), format(secret), format(secret, ">30"),
                  f"{secret}", f"{secret!s}", f"{secret!r}", f"{secret:^9}",
                  "%s" % secret, "%r" % (secret,),  # noqa: UP031 -- %-formatting is pinned too
                  secret._repr_html_(),
                  repr([secret]), str({"pw": secret})]
    for shown in renderings:
        assert PASSWORD not in shown
        assert MASK in shown


def test_secret_reveals_only_on_request() -> None:
    """reveal() is the one way out, and equality compares the hidden values."""
    secret = Secret(PASSWORD)
    assert secret.reveal() == PASSWORD
    assert secret == Secret(PASSWORD) and secret != Secret(PASSWORD + "x")
    assert secret != PASSWORD  # a Secret is not a str
    assert hash(secret) == hash(Secret(PASSWORD))
    assert bool(secret) and not bool(Secret(""))


def test_secret_has_no_instance_dict_to_peek_into() -> None:
    """vars() cannot dump a Secret's value (it uses __slots__)."""
    with pytest.raises(TypeError):
        vars(Secret(PASSWORD))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_cannot_be_pickled(protocol: int) -> None:
    """Pickling a Secret fails, so it cannot leave the kernel in a pickle."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(PASSWORD), protocol=protocol)


def test_logged_secret_shows_mask(log_output: tuple[logging.Logger, io.StringIO]) -> None:
    """A Secret passed as a logging argument is written as ****."""
    logger, stream = log_output
    logger.info("connecting with %s", Secret(PASSWORD))
    assert stream.getvalue() == f"connecting with {MASK}\n"


def test_logged_url_password_is_masked_by_the_runs_log_handler(
        log_output: tuple[logging.Logger, io.StringIO]) -> None:
    """A plain-string URL with a password, printed by a cell, is masked on the terminal."""
    logger, stream = log_output
    logger.warning("dsn=%s", "postgresql://app-user:plainpw42@db.internal:5432/fly-db")
    assert stream.getvalue() == f"dsn=postgresql://app-user:{MASK}@db.internal:5432/fly-db\n"


def test_dataframe_with_a_secret_shows_mask() -> None:
    """A pandas table holding a Secret shows **** in text and HTML."""
    frame = pd.DataFrame({"user": ["app-user"], "password": [Secret(PASSWORD)]})
    for shown in (frame.to_string(), frame.to_html(), repr(frame), frame._repr_html_()):
        assert PASSWORD not in shown
        assert MASK in shown
        assert "app-user" in shown


# -- redact -------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, masked", [
    ("postgresql://u:p@h/db", f"postgresql://u:{MASK}@h/db"),
    ("postgres://app-user:s3cr3t@db.flycast:5432/fly-db?sslmode=disable",
     f"postgres://app-user:{MASK}@db.flycast:5432/fly-db?sslmode=disable"),
    ("postgres://u:s3cr!t$&'()*+,;=:~%40pw@h:5432/db", f"postgres://u:{MASK}@h:5432/db"),
    ("postgres://:only-a-password@h/db", f"postgres://:{MASK}@h/db"),
    ("redis://default:abc-DEF_123@cache:6379", f"redis://default:{MASK}@cache:6379"),
])
def test_redact_masks_url_passwords(url: str, masked: str) -> None:
    """The password between ':' and '@' of any URL is masked; user, host and path stay."""
    assert redact(f"DATABASE_URL={url} (copied)") == f"DATABASE_URL={masked} (copied)"


def test_redact_masks_every_url_in_a_text() -> None:
    """Several URLs in one text each lose their password."""
    text = "old postgres://a:pw-one@h1/db new postgres://b:pw-two@h2/db"
    assert redact(text) == f"old postgres://a:{MASK}@h1/db new postgres://b:{MASK}@h2/db"


def test_redact_leaves_urls_without_a_password() -> None:
    """A URL with no password, and ordinary text, come back unchanged."""
    text = "see https://github.com/renewa/renewa-one/issues/7 and postgres://u@h/db at 10:30"
    assert redact(text) == text
    assert redact("") == ""


@pytest.mark.parametrize("header", ["Authorization: Bearer abc.DEF-123_xyz",
                                    "authorization: bearer abc.DEF-123_xyz"])
def test_redact_masks_bearer_tokens(header: str) -> None:
    """A bearer token, in any case of 'Bearer', is masked."""
    assert redact(header) == header[:-len("abc.DEF-123_xyz")] + MASK


def test_redact_masks_a_whole_b64_bearer_token() -> None:
    """A bearer token using the RFC 6750 characters + / ~ = is masked completely."""
    assert redact("Authorization: Bearer abc123+def/ghi~jk==") == f"Authorization: Bearer {MASK}"


@pytest.mark.parametrize("token", [
    "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "gho_" + "a" * 36, "ghu_" + "B" * 36, "ghs_" + "0123456789abcdef", "ghr_" + "Z9" * 18,
    "github_pat_" + "11ABCDEFG0_" + "x" * 40,
])
def test_redact_masks_github_tokens(token: str) -> None:
    """GitHub token shapes (gh*_ and fine-grained github_pat_) are masked wherever they appear."""
    assert redact(f"GITHUB_TOKEN={token} in env") == f"GITHUB_TOKEN={MASK} in env"


def test_redact_leaves_short_gh_words() -> None:
    """Words that only start like a token (ghp_x) are not mangled."""
    assert redact("see ghp_short and gh_cli") == "see ghp_short and gh_cli"


def test_redact_masks_every_value_ever_wrapped() -> None:
    """A value once wrapped in a Secret is masked wherever it later turns up as plain text."""
    with forgetting_new_secrets():
        Secret("fly-api-token-value-123")
        assert redact("flyctl said: fly-api-token-value-123!") == f"flyctl said: {MASK}!"


def test_wrapping_a_url_also_remembers_its_password() -> None:
    """Wrapping a connection string makes its bare password masked too."""
    with forgetting_new_secrets():
        Secret("postgres://app-user:bare-pw-9876@h/db")
        assert redact("password authentication failed: bare-pw-9876") == (
            f"password authentication failed: {MASK}")


def test_short_values_are_not_remembered() -> None:
    """Values under six characters are not remembered, so ordinary words survive redact."""
    with forgetting_new_secrets():
        Secret("app")
        remember("db")
        assert redact("the app db") == "the app db"


@given(st.text(alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)),
               min_size=6, max_size=40),
       st.text(max_size=20), st.text(max_size=20))
def test_any_wrapped_value_is_masked_in_any_text(value: str, before: str, after: str) -> None:
    """Whatever surrounds it, a wrapped value never survives redact."""
    with forgetting_new_secrets():
        Secret(value)
        assert value not in redact(before + value + after)


# -- mask_url -----------------------------------------------------------------------------------
def test_mask_url_keeps_user_host_port_and_path() -> None:
    """mask_url shows who connects where, with the password as ****."""
    url = "postgresql://migration-user:pw-xyz-123@db.internal:5432/fly-db?sslmode=require"
    assert mask_url(url) == (
        f"postgresql://migration-user:{MASK}@db.internal:5432/fly-db?sslmode=require")


def test_mask_url_accepts_a_secret() -> None:
    """mask_url of a Secret shows the masked URL, never the password."""
    shown = mask_url(Secret("postgres://u:pw-in-secret-77@h/db"))
    assert shown == f"postgres://u:{MASK}@h/db"


def test_mask_url_without_password_is_unchanged() -> None:
    """A URL without a password is shown as is."""
    assert mask_url("postgres://u@h:5432/db") == "postgres://u@h:5432/db"


def test_mask_url_keeps_the_host_as_written() -> None:
    """mask_url changes only the password, so an IPv6 host keeps its brackets."""
    assert mask_url("postgres://u:pw@[fdaa::3]:5432/db") == f"postgres://u:{MASK}@[fdaa::3]:5432/db"


# -- token_from_env -----------------------------------------------------------------------------
def test_token_from_env_prefers_the_first_name() -> None:
    """GITHUB_TOKEN wins over GH_TOKEN when both are set."""
    token = token_from_env({"GITHUB_TOKEN": "first-token", "GH_TOKEN": "second-token"},
                           "GITHUB_TOKEN", "GH_TOKEN")
    assert isinstance(token, Secret) and token.reveal() == "first-token"


@pytest.mark.parametrize("github_token", [None, "", "   ", "\n"])
def test_token_from_env_skips_missing_or_blank(github_token: str | None) -> None:
    """A missing or blank GITHUB_TOKEN falls through to GH_TOKEN."""
    env = {"GH_TOKEN": "  gh-token-value  "}
    if github_token is not None:
        env["GITHUB_TOKEN"] = github_token
    token = token_from_env(env, "GITHUB_TOKEN", "GH_TOKEN")
    assert token is not None and token.reveal() == "gh-token-value"


def test_token_from_env_none_when_all_blank() -> None:
    """No usable variable gives None, not an empty Secret."""
    assert token_from_env({"GITHUB_TOKEN": " ", "GH_TOKEN": ""}, "GITHUB_TOKEN", "GH_TOKEN") is None
    assert token_from_env({}, "GITHUB_TOKEN", "GH_TOKEN") is None


# -- errors are redacted ------------------------------------------------------------------------
def test_error_messages_are_redacted() -> None:
    """A password inside an error's message or next step never reaches str(error)."""
    error = RollbackError("cannot log in to postgresql://app-user:err-pw-31@db/fly-db",
                          "retry with postgres://migration-user:err-pw-32@db/fly-db")
    for shown in (str(error), error.what, error.next_step, repr(error)):
        assert "err-pw-31" not in shown and "err-pw-32" not in shown
    assert f"postgresql://app-user:{MASK}@db/fly-db" in str(error)


def test_command_failure_stderr_is_redacted() -> None:
    """The stderr tail kept on a CommandFailed is redacted too."""
    error = CommandFailed("psql failed", returncode=2,
                          stderr_tail="FATAL for postgres://u:tail-pw-55@h/db")
    assert error.stderr_tail == f"FATAL for postgres://u:{MASK}@h/db"


# -- redact: credentials recognised by their shape, property-based -------------------------------
# Harmless text: letters and sentence punctuation, so it can form no key=value, URL or token.
HARMLESS = st.text(alphabet=st.sampled_from(string.ascii_letters + " .,!?()-"), max_size=30) \
    .filter(lambda s: "bearer" not in s.lower() and "flyv" not in s.lower())
# URL passwords as pasted raw: '@', '/', ':', spaces and newlines included, quotes not.
URL_PASSWORD = st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits
                                                + "@/: \n!$&()+,;=~%-._*"),
                       min_size=6, max_size=40) \
    .filter(lambda s: "://" not in s and not re.search(r"\n[ \t]*\n", s) and s.strip() == s)
# Any printable value, with the quotes, backslashes and spaces that force quoting.
ANY_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF,
                                           blacklist_characters="*"),
                    min_size=6, max_size=40).filter(lambda s: s.strip() == s)
# What a shell or libpq takes unquoted: no spaces, quotes, backslashes or leading $.
BARE_VALUE = st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits
                                              + "!#%&()+,-./:;<>?@[]^_{|}~="),
                     min_size=6, max_size=40)
SECRET_KEYS = ["password", "PASSWORD", "PGPASSWORD", "passwd", "db_password", "secret",
               "client_secret", "token", "GITHUB_TOKEN", "FLY_API_TOKEN", "access_token",
               "api_key", "API-KEY", "apiKey", "Password"]
B64 = string.ascii_letters + string.digits + "+/="


def _survivors(text: str, secret: str, *encodings: str) -> list[str]:
    """The forms of ``secret`` still in ``redact(text)`` (empty when it was masked)."""
    out = redact(text)
    return [form for form in (secret, *encodings) if form and form in out]


def _libpq_quote(value: str) -> str:
    if re.fullmatch(r"[^\s'\\]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _yaml_scalar(value: str) -> str:
    """A YAML scalar for ``value``: plain when YAML allows it, else double-quoted (JSON's form)."""
    plain = re.fullmatch(r"[A-Za-z0-9][^\n#]*", value) and ": " not in value \
        and not value.endswith(":")
    return value if plain else json.dumps(value)


@given(before=HARMLESS, after=HARMLESS, user=st.from_regex(r"[a-z][a-z-]{0,10}", fullmatch=True),
       password=URL_PASSWORD,
       scheme=st.sampled_from(["postgres", "postgresql", "redis", "https", "mysql"]),
       host=st.sampled_from(["db.internal", "direct.gjpkdon1pn60yln4.flympg.net", "[fdaa::3]",
                             "localhost", "h"]),
       tail=st.sampled_from(["", ":5432", "/fly-db", ":5432/fly-db?sslmode=disable"]))
def test_url_password_with_any_characters_never_survives(
        before: str, after: str, user: str, password: str, scheme: str, host: str,
        tail: str) -> None:
    """A URL password with '@', '/', ':', spaces or newlines is masked; the rest stays."""
    url = f"{scheme}://{user}:{password}@{host}{tail}"
    text = f"{before} {url}\n{after}"
    expected = f"{before} {scheme}://{user}:{MASK}@{host}{tail}\n{after}"
    assume(password not in expected)
    assert redact(text) == expected


@given(before=HARMLESS, after=HARMLESS, password=URL_PASSWORD)
def test_json_escaped_url_password_never_survives(before: str, after: str, password: str) -> None:
    """A URL inside a JSON string with escaped slashes (postgres:\\/\\/…) loses its password too."""
    def escaped(pw: str) -> str:
        url = f"postgres://app-user:{pw}@direct.x.flympg.net:5432/fly-db"
        return json.dumps({"DATABASE_URL": url}).replace("/", "\\/")

    encoded = json.dumps(password)[1:-1].replace("/", "\\/")
    expected = f"{before} {escaped(MASK)}\n{after}"
    assume(password not in expected and encoded not in expected)
    assert redact(f"{before} {escaped(password)}\n{after}") == expected


FORMS: dict[str, Callable[[str, str], tuple[str, str]]] = {
    # name: (key, value) -> (the text, the value as encoded in it)
    "shell bare": lambda k, v: (f"export {k}={v}", v),
    "shell quoted": lambda k, v: (f"export {k}={shlex.quote(v)}", shlex.quote(v)),
    "flag": lambda k, v: (f"tool --{k.lower().replace('_', '-')} {shlex.quote(v)} --json",
                          shlex.quote(v)),
    "libpq": lambda k, v: (f"host=db port=5432 {k}={_libpq_quote(v)} dbname=fly-db",
                           _libpq_quote(v)),
    "yaml": lambda k, v: (f"env:\n  {k}: {_yaml_scalar(v)}\n  region: ams", _yaml_scalar(v)),
    "yaml single-quoted": lambda k, v: (f"{k}: '{v.replace(chr(39), chr(39) * 2)}'\nnext: 1",
                                        v.replace("'", "''")),
    "ini": lambda k, v: (f"[db]\n{k} = {v}\nhost = db", v),
    "json": lambda k, v: (json.dumps({"user": "app", k: v, "db": "fly-db"}),
                          json.dumps(v)[1:-1]),
    "json indented": lambda k, v: (json.dumps({"credentials": {k: v}}, indent=4),
                                   json.dumps(v)[1:-1]),
    "json in json": lambda k, v: (json.dumps({"log": json.dumps({k: v, "user": "app"})}),
                                  json.dumps(json.dumps(v)[1:-1])[1:-1]),
    "python repr": lambda k, v: (repr({k: v, "user": "app"}), repr(v)[1:-1]),
}


@pytest.mark.parametrize("form", FORMS)
@given(before=HARMLESS, after=HARMLESS, key=st.sampled_from(SECRET_KEYS), value=ANY_VALUE,
       bare=BARE_VALUE)
def test_secret_values_by_key_never_survive(form: str, before: str, after: str, key: str,
                                            value: str, bare: str) -> None:
    """password=, PGPASSWORD=, password:, "password": …, \\"token\\": …, --api-key … are masked."""
    if form in ("shell bare", "ini"):
        value = bare  # unquoted forms hold no spaces or quotes
        assume(not value.startswith("$"))  # a shell expands $NAME: that is no literal value
    if form == "yaml single-quoted":
        assume("\n" not in value)
    body, encoded = FORMS[form](key, value)
    text = f"{before}\n{body}\n{after}"
    assume(value not in f"{before}\n{after}" and encoded not in f"{before}\n{after}")
    assume(value not in body.replace(encoded, MASK))
    assert _survivors(text, value, encoded) == []
    shown = redact(text)
    assert shown.startswith(before + "\n") and shown.endswith("\n" + after)
    assert key.lower().replace("_", "-") in shown.lower().replace("_", "-")  # the key stays


FLY_MACAROON = st.text(alphabet=st.sampled_from(B64 + "_-"), min_size=20, max_size=80)


@given(before=HARMLESS, after=HARMLESS, parts=st.lists(FLY_MACAROON, min_size=1, max_size=3),
       kind=st.sampled_from(["fm1", "fm2", "fo1"]),
       shape=st.sampled_from(["{t}", "FLY_API_TOKEN={t}", "FLY_API_TOKEN=\"{t}\"",
                              "Authorization: {t}", "-t {t}", '{{"token": "{t}"}}']))
def test_fly_tokens_never_survive(before: str, after: str, parts: list[str], kind: str,
                                  shape: str) -> None:
    """FlyV1 fm1_/fm2_ tokens, multi-part ones (comma-separated) included, are masked."""
    token = "FlyV1 " + ",".join(f"{kind}_{part}" for part in parts)
    text = f"{before} {shape.format(t=token)} {after}"
    assume(not any(part in before + after for part in parts))
    assert _survivors(text, token, *parts) == []
    assert redact(text).startswith(before + " ") and redact(text).endswith(" " + after)


@given(before=HARMLESS, after=HARMLESS,
       token=st.one_of(
           st.tuples(st.sampled_from(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
                     st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits),
                             min_size=16, max_size=40)),
           st.tuples(st.just("github_pat_"),
                     st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits + "_"),
                             min_size=22, max_size=90))),
       shape=st.sampled_from(["{t}", "GH_TOKEN={t}", "Authorization: token {t}",
                              "Authorization: Bearer {t}", "https://x-access-token:{t}@github.com",
                              "({t})", '"{t}"']))
def test_github_tokens_never_survive(before: str, after: str, token: tuple[str, str],
                                     shape: str) -> None:
    """Every GitHub token prefix (ghp_ gho_ ghu_ ghs_ ghr_ github_pat_) is masked, in any wrapping."""
    prefix, body = token
    text = f"{before} {shape.format(t=prefix + body)} {after}"
    assume(body not in before + after)
    assert _survivors(text, prefix + body, body) == []
    assert redact(text).startswith(before + " ") and redact(text).endswith(" " + after)


@given(before=HARMLESS, after=HARMLESS,
       token=st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits + "-._~+/"),
                     min_size=8, max_size=60),
       header=st.sampled_from(["Authorization: Bearer ", "authorization: bearer ",
                               '"Authorization": "Bearer ', "BEARER "]))
def test_bearer_tokens_never_survive(before: str, after: str, token: str, header: str) -> None:
    """A bearer token of the RFC 6750 characters is masked whatever the header's case."""
    text = f"{before} {header}{token}= {after}"
    assume(token not in before + after)
    assert _survivors(text, token) == []


@pytest.mark.parametrize("text, shown", [
    ("postgres://u:p@ss/w rd@host:5432/db", f"postgres://u:{MASK}@host:5432/db"),
    ("postgres://u:p@ss\nw:rd@host/db", f"postgres://u:{MASK}@host/db"),
    ("PGPASSWORD=hunter22 psql -h db", f"PGPASSWORD={MASK} psql -h db"),
    ("host=db password='a b\\'c' dbname=x", f"host=db password={MASK} dbname=x"),
    ('{"password": "hunter22", "user": "app"}', f'{{"password": "{MASK}", "user": "app"}}'),
    ('{\\"password\\": \\"hunter22\\"}', f'{{\\"password\\": \\"{MASK}\\"}}'),
    ("postgres:\\/\\/u:hunter22@h\\/db", f"postgres:\\/\\/u:{MASK}@h\\/db"),
    ("password: |\n  hunter22\nnext: 1", f"password: |\n{MASK}\nnext: 1"),
    ("FLY_API_TOKEN=FlyV1 fm2_abcdefghijklmnopqrst,fm2_zyxwvutsrqponmlkjih next",
     f"FLY_API_TOKEN={MASK} {MASK} next"),
    ("--access-token abcdefgh mpg status", f"--access-token {MASK} mpg status"),
])
def test_redact_examples(text: str, shown: str) -> None:
    """The shapes named in the hardening issue, as they are shown after redaction."""
    assert redact(text) == shown


@pytest.mark.parametrize("text", [
    "export GITHUB_TOKEN=$(gh auth token) in the shell that starts the runbook",
    "No GitHub token in the environment (GITHUB_TOKEN or GH_TOKEN).",
    "password authentication failed for user app-user",
    "DbUrl(var='DATABASE_URL', user='app-user', password=Secret(****))",
    "http://localhost:16380/fly-db and ssh://git@github.com/o/r",
    "token_from_env(environ, *TOKEN_VARS)",
])
def test_redact_leaves_references_and_prose(text: str) -> None:
    """Shell references, prose about tokens and already masked values are shown as written."""
    assert redact(text) == text


def test_redact_prefers_masking_too_much_when_an_address_follows_a_url() -> None:
    """After a URL, an email on the same paragraph may be the host: the mask swallows up to it."""
    shown = redact("cannot reach postgres://u:pw-77@db/x; mail ops@example.com")
    assert "pw-77" not in shown and shown.endswith("@example.com")


@pytest.mark.parametrize("text", ["password" * 20_000, "a:" * 100_000, "postgres://u:" * 20_000,
                                  "--token " * 20_000, "@x " * 50_000])
def test_redact_stays_linear_on_hostile_text(text: str) -> None:
    """Long runs of keys, colons or URL heads are processed in one pass (a ReDoS would hang)."""
    assert len(redact(text)) <= len(text) + len(MASK) * len(text)


# -- guard_free_text -----------------------------------------------------------------------------
@given(text=HARMLESS)
def test_guard_passes_ordinary_text_unchanged(text: str) -> None:
    """Text without credentials comes back as it was."""
    assert guard_free_text("reason", text) == text


@pytest.mark.parametrize("value, kind", [
    ("v42 broke login, DB is postgres://app:hunter22@db/x", "a password inside a URL"),
    ("used PGPASSWORD=hunter22 to check", "a name like password"),
    ("see ghp_" + "A" * 36, "GitHub token"),
    ("FlyV1 fm2_abcdefghijklmnopqrstuvwxyz", "Fly.io"),
    ("curl -H 'Authorization: Bearer abcdefgh123'", "Authorization header"),
    ("ran it with --password hunter22", "a flag named like password"),
])
def test_guard_refuses_credentials_naming_field_and_kind_never_the_value(
        value: str, kind: str) -> None:
    """A credential in free text is refused (exit 2), the message says where and what, and to rotate."""
    with pytest.raises(BadInput) as err:
        guard_free_text("reason", value)
    message = str(err.value)
    assert err.value.exit_code == 2
    assert "reason" in message and kind in message and "rotate" in message
    for piece in ("hunter22", "A" * 36, "abcdefghijklmnopqrstuvwxyz", "abcdefgh123"):
        assert piece not in message


def test_guard_message_reads_as_written() -> None:
    """What the refusal says it found survives redaction of the message itself."""
    with pytest.raises(BadInput) as err:
        guard_free_text("operator", "alice PGPASSWORD=x1 FlyV1 fm1_abcdefghijklmnopqrstu "
                                    "--token abc Authorization: Bearer abc https://u:p@h")
    assert MASK not in str(err.value)
    assert str(err.value).count(";") == 4  # five kinds, each named once


def test_guard_refuses_a_value_the_runbook_holds_as_a_secret() -> None:
    """A secret the runbook has seen (a database password) pasted bare is refused too."""
    with forgetting_new_secrets():
        Secret("bare-pw-4321-xyz")
        with pytest.raises(BadInput, match="holds as a secret") as err:
            guard_free_text("incident", "INC-7 bare-pw-4321-xyz")
        assert "bare-pw-4321-xyz" not in str(err.value)


# -- the runbook's own words are never mistaken for secrets ---------------------------------------
# Literals that do carry a credential's shape on purpose: the lab's URL (its token is shown so
# the engineer can open it), an Authorization header being built.
SECRET_SHAPED = {("lab.py", "?token="), ("github_session.py", "Bearer "), ("metrics.py", "Bearer "),
                 ("backends.py", "fm2_sandbox")}  # the sandbox's own Fly token: masked, as it should be


def _message_literals() -> list[tuple[str, int, str]]:
    """Every string literal and f-string skeleton ({…} as X) in the package, sandbox and
    docstrings aside."""
    import ast

    package = Path(__file__).resolve().parents[1] / "rollback_helpers"
    found = []
    for path in sorted(package.rglob("*.py")):
        if "sandbox" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(owner.body[0].value) for owner in ast.walk(tree)  # never shown
                      if isinstance(owner, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                            ast.AsyncFunctionDef))
                      and owner.body and isinstance(owner.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            found.append((path.name, node.lineno, text))
    return found


def test_no_message_of_the_runbook_is_masked_by_its_own_redaction() -> None:
    """A hint such as "No GitHub token: neither GITHUB_TOKEN nor …" reads as `token: <value>`
    and would reach the engineer as "No GitHub token: ****"; every message must survive."""
    masked = [f"{name}:{line}: {text[:80]!r} → {redact(text)[:80]!r}"
              for name, line, text in _message_literals()
              if redact(text) != text
              and not any(name == f and marker in text for f, marker in SECRET_SHAPED)]
    assert masked == []


def test_a_shell_reference_in_a_markdown_code_span_is_shown_as_written() -> None:
    text = "(e.g. `export GH_TOKEN=$(gh auth token)`), then re-run"
    assert redact(text) == text
    assert redact("`export GH_TOKEN=ghp_" + "a" * 36 + "`") == "`export GH_TOKEN=****`"
