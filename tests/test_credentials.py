"""Every credential shape an operator may type is caught the same way everywhere: refused by the
guard, masked by redact(), never echoed by an argparse error nor by a value cut short; and the
sentences an on-call engineer writes are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.domain.validation import shown
from rollback_helpers.errors import BadInput, guard_free_text
from rollback_helpers.secrets import MASK, find_credentials, redact

PW = "S3cr3tPw1234"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvcHMiLCJpYXQiOjE3MDAwMDAwMDB9"
       ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYS3cr3tKEY1"
DIGEST = "sha256:" + "0123456789abcdef" * 4

# (what it is, the text as typed, the part that must never be shown)
SHAPES: list[tuple[str, str, str]] = [
    # a URL's password, whatever follows the host
    ("url, host then a period", f"login failed for postgresql://app-user:{PW}@pgbouncer.x.flympg.net.", PW),
    ("url, host then !", f"postgresql://app-user:{PW}@db.internal!", PW),
    ("url in backticks", f"`postgresql://app-user:{PW}@db.internal`", PW),
    ("url, port then a colon", f"postgresql://app-user:{PW}@db.internal:5432: timeout", PW),
    ("url, underscore host", f"postgresql://app-user:{PW}@db_primary/fly-db", PW),
    ("url, socket and no host", f"postgresql://app-user:{PW}@/fly-db?host=/var/run/postgresql", PW),
    ("url, IDN host", f"postgresql://app-user:{PW}@bücher.example/fly-db", PW),
    ("url, punycode host", f"postgresql://app-user:{PW}@xn--bcher-kva.example/fly-db", PW),
    ("url without host", f"postgresql://app-user:{PW}", PW),
    ("url without host in a sentence", f"tried postgresql://app-user:{PW} twice", PW),
    ("url percent-encoded", f"postgresql%3A%2F%2Fapp-user%3A{PW}%40db.internal%2Ffly-db", PW),
    ("url JSON-escaped", f"postgres:\\/\\/u:{PW}@h\\/db", PW),
    ("url in parentheses", f"(postgresql://app-user:{PW}@db.internal)", PW),
    ("url in quotes", f"'postgresql://app-user:{PW}@db.internal'", PW),
    ("url, @ in the password", "postgresql://app-user:S3c@r3tPw1234@db.internal/x", "r3tPw1234"),
    ("url, empty user", f"redis://:{PW}@cache:6379", PW),
    ("url, IPv6 host", f"postgres://u:{PW}@[fdaa::3]:5432/db", PW),
    ("url then a comma", f"postgres://u:{PW}@db.internal, retrying", PW),
    ("url, mongodb+srv", f"mongodb+srv://u:{PW}@cluster0.ab1cd.mongodb.net/?retryWrites=true", PW),
    ("url, token as user", f"https://x-access-token:{PW}@github.com/o/r.git", PW),
    ("url, zero-width in scheme", f"postgres\u200bql://app-user:{PW}@db.internal", PW),
    # a value after a word naming a secret
    ("password PW", f"password {PW}", PW),
    ("password for user is PW", f"the password for app-user is {PW}", PW),
    ("password was PW!", f"password was {PW}!", PW),
    ("passphrase PW", f"passphrase {PW}", PW),
    ("token is PW", f"the token is {PW}", PW),
    ("pwd=", f"pwd={PW}", PW),
    ("pw:", f"pw: {PW}", PW),
    ("DB_PWD=", f"DB_PWD={PW}", PW),
    ("DB_PASS=", f"DB_PASS={PW}", PW),
    ("dbPassword= (camel case)", f"dbPassword={PW}", PW),
    ("PGPASSWORD=", f"PGPASSWORD={PW} psql -h db", PW),
    ("password:", f"password: {PW}", PW),
    ("JSON", f'{{"password": "{PW}"}}', PW),
    ("--password=", f"--password={PW}", PW),
    ("--password PW", f"--password {PW}", PW),
    ("libpq", f"host=db password='{PW}' dbname=x", PW),
    ("api_key=", f"api_key={PW}", PW),
    ("client_secret:", f"client_secret: {PW}", PW),
    ("keyword split across lines", f"pass\nword={PW}", PW),
    ("keyword hyphenated across lines", f"pass-\nword: {PW}", PW),
    ("env name split across lines", f"PGPASS\r\nWORD={PW}", PW),
    # keywords in disguise
    ("Cyrillic look-alikes", f"pаsswоrd={PW}", PW),
    ("Greek look-alike", f"tοken={PW}", PW),
    ("zero-width space", f"pass\u200bword={PW}", PW),
    ("zero-width joiner", f"p\u200dassword: {PW}", PW),
    ("soft hyphen", f"pass\u00adword: {PW}", PW),
    ("full-width letters", f"ｐａｓｓｗｏｒｄ＝{PW}", PW),
    # shapes of their own
    ("private key block", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAS3cr3tKeyBody\n"
                          "-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEAS3cr3tKeyBody"),
    ("private key header, no end", "got -----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXk",
     "b3BlbnNzaC1rZXk"),
    ("pgpass line", f"db.internal:5432:fly-db:app-user:{PW}", PW),
    ("pgpass wildcards", f"*:*:*:postgres:{PW}", PW),
    ("JWT without Bearer", f"cookie was {JWT}", JWT[40:]),
    ("AWS access key id", "key AKIAIOSFODNN7S3CR3T1 leaked", "AKIAIOSFODNN7S3CR3T1"),
    ("AWS secret access key", f"aws says {AWS_SECRET}", AWS_SECRET),
    ("GitHub classic token", "ghp_" + "S3cr3t" * 6, "S3cr3t" * 6),
    ("GitHub fine-grained token", "github_pat_11ABCDEFG0_" + "S3cr3t" * 7, "S3cr3t" * 7),
    ("Fly token", "FlyV1 fm2_" + "S3cr3t" * 5, "S3cr3t" * 5),
    ("bearer header", f"curl -H 'Authorization: Bearer {PW}'", PW),
    ("basic header", f"Authorization: Basic {PW}", PW),
    ("token header", f"Authorization: token {PW}", PW),
    ("Slack bot token", f"xoxb-123456-{PW}", PW),
    ("Slack webhook", f"https://hooks.slack.com/services/T0001/B0002/{PW}", PW),
    ("Stripe key", f"sk_live_{PW}abcd", PW),
    ("Google API key", "AIza" + "S3cr3tPw1234abcdefghijklmnopqrstuvw", "S3cr3tPw1234abcdefghijklmnopqrstuvw"),
    ("npm token", "npm_" + "S3cr3t" * 6, "S3cr3t" * 6),
    ("GitLab token", f"glpat-{PW}abcdefgh", PW),
    ("sk- API key", f"sk-proj-{PW}abcdefghijkl", PW),
    ("curl -u", f"curl -u app-user:{PW} https://api.example.com", PW),
]

# What an on-call engineer writes in a reason: nothing here may be refused or masked.
HARMLESS = [
    "password reset flow broken",
    "token bucket limiter drops requests",
    "the password was reset at 10:30",
    "users report password expired",
    "passwords must be 12 characters",
    "secret rotation is scheduled",
    "API key rotation pending",
    "ran pwd in /srv/app",
    "see https://github.com/renewa/renewa-one/issues/7",
    "http://localhost:8080/health returned 503",
    "postgres://app-user@db.internal:5432/fly-db refused connections",
    f"image ghcr.io/renewa/app@{DIGEST} crashes on boot",
    f"digest {DIGEST}",
    f"registry.fly.io/app_pw:{DIGEST} (a colon where the @ goes)",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b broke checkout",
    "mail ops@example.com",
    "ping @alice and @renewa/security",
    "v42 crashes on boot after the migration",
    "rolled back at 2024-05-01T10:30:00Z",
    "IPv6 fdaa:0:1:2::3 unreachable",
    "INC-1234: login failures since 02:00 UTC",
    "deploy v1.2.3 broke checkout; upwards of 40% errors",
    "https://renewa.sentry.io/issues/12345/?project=7",
    "AKIA is the prefix of AWS key ids",
    "the eyJ prefix marks a JWT",
    "ghp_short is not a token",
    "migration 0042_add_index failed on fly-db",
    "MAC aa:bb:cc:dd:ee:ff flapping",
    "réplica en Amsterdam caída, пароль не менялся",
]

IDS = [what for what, _, _ in SHAPES]


def test_the_table_covers_every_shape_the_issue_counts() -> None:
    assert len(SHAPES) >= 56 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("text, secret", [(t, s) for _, t, s in SHAPES], ids=IDS)
def test_the_guard_refuses_each_shape_naming_the_field_never_the_value(text: str, secret: str) -> None:
    with pytest.raises(BadInput) as refused:
        guard_free_text("reason", text)
    assert refused.value.exit_code == 2
    assert "reason" in str(refused.value) and secret not in str(refused.value)


@pytest.mark.parametrize("text, secret", [(t, s) for _, t, s in SHAPES], ids=IDS)
def test_redact_masks_each_shape_and_agrees_with_the_guard(text: str, secret: str) -> None:
    shown_text = redact(text)
    assert secret not in shown_text and MASK in shown_text
    assert find_credentials(text)  # the guard's detector is redact's


@pytest.mark.parametrize("text, secret", [(t, s) for _, t, s in SHAPES], ids=IDS)
def test_a_value_cut_short_is_masked_before_it_is_cut(text: str, secret: str) -> None:
    """A message keeps 57 characters of a bad value: cut mid-secret, its head must not show."""
    pad = "x" * max(0, 55 - text.index(secret) - len(secret) // 2) + " "
    for value in (text, pad + text, [pad + text], {"reason": pad + text}):
        out = shown(value)
        assert secret not in out and secret[:6] not in out


@pytest.mark.parametrize("text, secret", [(t, s) for _, t, s in SHAPES], ids=IDS)
def test_argparse_errors_do_not_echo_the_credential(
        text: str, secret: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["drill", "path-a", "--env", "staging", f"--speed={text}"],
                 ["drill", "path-a", "--env", "staging", f"--ready-timeout={text}"],
                 ["drill", "path-a", "--env", "staging", f"--record-number={text}"],
                 ["drill", text, "--env", "staging"],
                 ["exit-codes", f"./incidents/{text}"]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert secret not in err and "Traceback" not in err


@pytest.mark.parametrize("flag", [f"--password={PW}", f"--db-password={PW}", f"--token={PW}",
                                  f"--dsn=postgresql://app-user:{PW}@db.internal."])
def test_an_unknown_flag_holding_a_credential_is_not_echoed(
        flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["drill", "path-a", "--env", "staging", flag])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "unrecognized arguments" in err
    assert PW not in err and MASK in err


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_text_is_neither_refused_nor_masked(text: str) -> None:
    assert guard_free_text("reason", text) == text
    assert redact(text) == text
    assert find_credentials(text) == []


def test_a_disguised_keyword_masks_its_original_characters_and_keeps_the_rest() -> None:
    """The view undoes disguises for reading; what is shown is the text as typed, value masked."""
    assert redact(f"pass\u200bword={PW} ok") == f"pass\u200bword={MASK} ok"
    assert redact(f"pаsswоrd: {PW}") == f"pаsswоrd: {MASK}"
    assert redact(f"pass\nword={PW}") == f"pass\nword={MASK}"
    assert redact(f"ｐａｓｓｗｏｒｄ＝{PW}") == f"ｐａｓｓｗｏｒｄ＝{MASK}"


def test_every_kind_the_guard_names_reads_as_written() -> None:
    """The refusal lists kinds of credential; none of those words may be masked themselves."""
    from rollback_helpers.secrets.detector import KNOWN, RULES

    listed = "; ".join([KNOWN, *(kind for kind, _ in RULES)])
    assert redact(listed) == listed


def test_percent_encoded_url_keeps_its_encoding_around_the_mask() -> None:
    assert redact(f"postgresql%3A%2F%2Fu%3A{PW}%40db.internal") == \
        f"postgresql%3A%2F%2Fu%3A{MASK}%40db.internal"


@pytest.mark.parametrize("text", ["x" * 200_000 + "\u200b", "pass\n" * 40_000,
                                  "%3A%2F%2F" * 20_000, "a\u200bb" * 50_000,
                                  "x:5432:a:b:" * 20_000, "the token is " * 20_000,
                                  "eyJaaaaaaaaaa." * 20_000, "@a-" * 60_000])
def test_the_view_stays_linear_on_long_disguised_text(text: str) -> None:
    assert len(redact(text)) <= len(text) + len(MASK)


LONG_URL = f"{'x' * 28} postgresql://app-user:{PW}@pgbouncer.w3k8p1x9m2q7v4zr.flympg.net/fly-db"


@pytest.mark.parametrize("variable", ["ROLLBACK_POLL_INTERVAL", "ROLLBACK_GITHUB_REPO"])
def test_a_bad_variable_is_masked_before_it_is_cut(
        variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.errors import ConfigError

    monkeypatch.chdir(tmp_path)  # no runbook.toml here
    with pytest.raises(ConfigError, match=variable) as refused:
        load_config(environ={variable: LONG_URL})
    assert PW[:6] not in str(refused.value) and "S3cr" not in str(refused.value)


def test_a_bad_value_in_runbook_toml_is_masked_before_it_is_cut(tmp_path: Path) -> None:
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.errors import ConfigError

    toml = tmp_path / "runbook.toml"
    toml.write_text(f'poll_interval = "{LONG_URL}"\n')
    with pytest.raises(ConfigError, match="poll_interval") as refused:
        load_config(environ={}, config_file=toml)
    assert "S3cr" not in str(refused.value)


def test_a_bad_value_in_a_scenario_file_is_masked_before_it_is_cut(tmp_path: Path) -> None:
    from rollback_helpers.errors import ConfigError
    from rollback_helpers.sandbox.scenario_schema import check_scenario

    with pytest.raises(ConfigError, match="scenario file") as refused:
        check_scenario({"start": LONG_URL}, tmp_path / "s.toml")
    assert "S3cr" not in str(refused.value)
