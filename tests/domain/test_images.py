"""Pinned image references: valid ones round-trip, damaged ones are refused with a reason."""

from __future__ import annotations

import sys

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rollback_helpers.domain.images import ImageRef, parse_digest, parse_image_ref
from rollback_helpers.errors import BadInput, ImageRefError

HEX = "0123456789abcdef"
WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]

# Repository names built from the OCI distribution grammar (single separators), independently
# of the module's own regular expression, so the property is not a tautology.
component = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*", fullmatch=True).filter(
    lambda s: len(s) <= 20)
domain = st.builds(lambda host, port: host + (f":{port}" if port is not None else ""),
                   st.lists(st.from_regex(r"[a-z0-9]+(-[a-z0-9]+)*", fullmatch=True)
                            .filter(lambda s: len(s) <= 12), min_size=1, max_size=3)
                   .map(".".join),
                   st.none() | st.integers(1, 65535))
repositories = st.builds(
    lambda dom, path: (f"{dom}/" if dom else "") + "/".join(path),
    st.none() | domain,
    st.lists(component, min_size=1, max_size=3),
)
hex64 = st.text(alphabet=HEX, min_size=64, max_size=64)


def ref(repo: str, hex_digest: str) -> str:
    return f"{repo}@sha256:{hex_digest}"


def refused(text: str) -> str:
    """The message parse_image_ref refuses ``text`` with (fails if it is accepted)."""
    with pytest.raises(ImageRefError) as caught:
        parse_image_ref(text)
    return str(caught.value)


# -- round trip ---------------------------------------------------------------------------------
@given(repositories, hex64)
def test_valid_reference_round_trips(repo: str, hex_digest: str) -> None:
    """Any valid repository plus 64 lower-case hex parses into its parts and prints back as is."""
    text = ref(repo, hex_digest)
    parsed = parse_image_ref(text)
    assert parsed == ImageRef(repo, f"sha256:{hex_digest}")
    assert str(parsed) == text
    assert parse_image_ref(str(parsed)) == parsed


def test_fly_registry_reference_parses() -> None:
    """The runbook's usual reference, registry.fly.io/<app>@sha256:…, parses."""
    parsed = parse_image_ref(ref("registry.fly.io/renewa-one", "9f2c1a0b3d4e" + "0" * 52))
    assert parsed.repository == "registry.fly.io/renewa-one"
    assert parsed.short == "sha256:9f2c1a0b3d4e"


# -- mutations are refused, saying what is wrong ------------------------------------------------
@given(repositories, hex64)
def test_colon_instead_of_at_is_refused_not_rewritten(repo: str, hex_digest: str) -> None:
    """repo:sha256:<hex> is refused with a hint that digests join with '@'."""
    message = refused(f"{repo}:sha256:{hex_digest}")
    assert "joins the digest with ':'" in message
    assert ref(repo, hex_digest) in message  # the suggested correction


@given(repositories, hex64, st.data())
def test_upper_case_hex_is_refused(repo: str, hex_digest: str, data: st.DataObject) -> None:
    """A digest with any upper-case hex digit is refused as upper-case."""
    letters = [i for i, ch in enumerate(hex_digest) if ch in "abcdef"]
    assume(letters)
    i = data.draw(st.sampled_from(letters))
    mutated = hex_digest[:i] + hex_digest[i].upper() + hex_digest[i + 1:]
    assert "upper-case" in refused(ref(repo, mutated))


@given(repositories, hex64)
def test_upper_case_reference_is_refused(repo: str, hex_digest: str) -> None:
    """A whole reference shouted in upper case is refused (names are lower-case)."""
    message = refused(ref(repo, hex_digest).upper())
    assert "is not valid" in message or "not a sha256 digest" in message


@given(repositories, hex64, st.integers(0, 63))
def test_truncated_hex_is_refused_with_its_length(repo: str, hex_digest: str, keep: int) -> None:
    """A shortened digest is refused, saying how many characters it has."""
    message = refused(ref(repo, hex_digest[:keep]))
    assert f"has {keep} characters after 'sha256:'" in message


@given(repositories, hex64, st.data())
def test_extra_hex_is_refused(repo: str, hex_digest: str, data: st.DataObject) -> None:
    """A digest longer than 64 hex digits is refused, not cut to size."""
    extra = data.draw(st.text(alphabet=HEX, min_size=1, max_size=8))
    assert "characters after 'sha256:'" in refused(ref(repo, hex_digest + extra))


@given(repositories, hex64, st.sampled_from(WHITESPACE), st.data())
def test_whitespace_anywhere_is_refused(repo: str, hex_digest: str, space: str,
                                        data: st.DataObject) -> None:
    """Any whitespace character at any position (ends included) is refused as whitespace."""
    text = ref(repo, hex_digest)
    at = data.draw(st.integers(0, len(text)))
    assert "whitespace" in refused(text[:at] + space + text[at:])


@given(repositories, hex64, hex64)
def test_two_digests_are_refused(repo: str, first: str, second: str) -> None:
    """Two digests, joined either way, are refused as more than one digest."""
    assert "more than one digest" in refused(ref(repo, first) + f"@sha256:{second}")
    assert "more than one digest" in refused(ref(repo, first) + f"sha256:{second}")


@given(repositories, st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
def test_tag_form_is_refused_as_not_pinned(repo: str, tag: str) -> None:
    """repo:tag is refused because a tag can move."""
    assert "not pinned" in refused(f"{repo}:{tag}")


@given(repositories)
def test_bare_repository_is_refused_as_not_pinned(repo: str) -> None:
    """A repository without any digest is refused as not pinned."""
    assert "not pinned" in refused(repo)


def test_empty_reference_is_refused() -> None:
    """The empty string is refused as empty, with the right form."""
    message = refused("")
    assert "empty" in message and "@sha256:" in message


@pytest.mark.parametrize("repo", ["Registry.fly.io/app", "-app", "app-", "a..b", "/app", "app/"])
def test_invalid_repository_is_refused(repo: str) -> None:
    """A repository part that breaks the naming rules is refused, named in the message."""
    assert repr(repo) in refused(ref(repo, "0" * 64))


@pytest.mark.parametrize("tag", ["42", "20260610"])
def test_numeric_tag_with_digest_is_not_a_repository(tag: str) -> None:
    """name:tag@digest is refused whether the tag is letters (it is) or digits."""
    with pytest.raises(ImageRefError):
        parse_image_ref(ref(f"renewa-one:{tag}", "a" * 64))


def test_image_ref_error_is_bad_input() -> None:
    """A wrong reference is the operator's input: exit code 2."""
    with pytest.raises(BadInput) as caught:
        parse_image_ref("renewa-one:latest")
    assert caught.value.exit_code == 2


# -- parse_digest -------------------------------------------------------------------------------
@given(hex64)
def test_parse_digest_accepts_and_returns_a_valid_digest(hex_digest: str) -> None:
    """A bare sha256:<64 hex> digest is returned unchanged."""
    assert parse_digest(f"sha256:{hex_digest}") == f"sha256:{hex_digest}"


@pytest.mark.parametrize("text, phrase", [
    ("9f" * 32, "not a sha256 digest"),
    ("md5:" + "0" * 32, "not a sha256 digest"),
    ("SHA256:" + "0" * 64, "not a sha256 digest"),
    ("sha256:" + "A" * 64, "upper-case"),
    ("sha256:" + "0" * 12, "has 12 characters"),
    ("sha256:" + "g" * 64, "has 64 characters"),
    ("sha256:" + "0" * 64 + "sha256:" + "0" * 64, "more than one digest"),
    ("sha256: " + "0" * 64, "whitespace"),
    ("", "not a sha256 digest"),
])
def test_parse_digest_refuses_with_a_reason(text: str, phrase: str) -> None:
    """A malformed bare digest is refused with a message saying what is wrong."""
    with pytest.raises(ImageRefError, match=phrase):
        parse_digest(text)


def test_parse_digest_names_what_it_was_parsing() -> None:
    """The ``what`` argument appears in the message so the operator knows which field is bad."""
    with pytest.raises(ImageRefError, match="previous_image"):
        parse_digest("sha256:abc", what="previous_image")
