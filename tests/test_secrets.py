"""Secrets never render: the Secret type, redact as the second line of defence, tokens from env."""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback_helpers import secrets as secrets_module
from rollback_helpers.errors import CommandFailed, RollbackError
from rollback_helpers.secrets import MASK, Secret, mask_url, redact, remember, token_from_env

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


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


@pytest.fixture
def log_output() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose only handler writes through a formatter that calls redact."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


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
    assert stream.getvalue() == f"INFO connecting with {MASK}\n"


def test_logged_url_password_is_masked_by_a_redacting_handler(
        log_output: tuple[logging.Logger, io.StringIO]) -> None:
    """A plain-string URL with a password is masked by a handler that calls redact."""
    logger, stream = log_output
    logger.warning("dsn=%s", "postgresql://app-user:plainpw42@db.internal:5432/fly-db")
    assert stream.getvalue() == f"WARNING dsn=postgresql://app-user:{MASK}@db.internal:5432/fly-db\n"


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
