"""Pinned image references: ``repository@sha256:<64 lowercase hex>``.

A rollback target must name exactly one image, so only pinned references are
accepted. Anything else is rejected with what is wrong and the right form;
nothing is ever "fixed" silently (``repo:sha256:…`` is not rewritten to ``@``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rollback_helpers.errors import ImageRefError

_HEX64 = re.compile(r"[0-9a-f]{64}")
# [registry[:port]/]path — a port only ever belongs to a registry host, which a path follows.
_REPOSITORY = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
RIGHT_FORM = "registry.fly.io/<app>@sha256:<64 lowercase hex>"


@dataclass(frozen=True, order=True)
class ImageRef:
    repository: str
    digest: str  # sha256:<64 hex>

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def short(self) -> str:
        """``sha256:9f2c1a0b3d4e`` — enough to tell images apart in a table."""
        return self.digest[:19]


def parse_digest(text: str, *, what: str = "digest") -> str:
    """Validate a bare ``sha256:<64 hex>`` digest."""
    _reject_whitespace(text, what)
    if text.count("sha256:") > 1:
        raise ImageRefError(f"The {what} {text!r} holds more than one digest.",
                            "Give exactly one digest: sha256:<64 lowercase hex>.")
    if not text.startswith("sha256:"):
        raise ImageRefError(f"The {what} {text!r} is not a sha256 digest.",
                            "Give sha256:<64 lowercase hex>.")
    hex_part = text.removeprefix("sha256:")
    if _HEX64.fullmatch(hex_part):
        return text
    if _HEX64.fullmatch(hex_part.lower()):
        raise ImageRefError(f"The {what} {text!r} uses upper-case hex.",
                            "Digests are lower-case: copy it exactly as the registry prints it.")
    raise ImageRefError(
        f"The {what} {text!r} has {len(hex_part)} characters after 'sha256:', "
        "not 64 hex digits (a shortened or damaged digest).",
        "Copy the full digest from the deployment record or `flyctl status --json`.")


def parse_image_ref(text: str, *, what: str = "image reference") -> ImageRef:
    """Parse ``repo@sha256:<hex>``; raise ImageRefError saying what is wrong."""
    _reject_whitespace(text, what)
    if not text:
        raise ImageRefError(f"The {what} is empty.", f"Give a pinned reference: {RIGHT_FORM}.")
    if text.count("@") > 1 or text.count("sha256:") > 1:
        raise ImageRefError(f"The {what} {text!r} holds more than one digest.",
                            f"Give exactly one pinned reference: {RIGHT_FORM}.")
    if "@" not in text:
        if ":sha256:" in text:
            raise ImageRefError(
                f"The {what} {text!r} joins the digest with ':'; digests join with '@'.",
                f"Use {text.replace(':sha256:', '@sha256:', 1)!r} if that is the image you mean "
                f"(form: {RIGHT_FORM}).")
        raise ImageRefError(
            f"The {what} {text!r} is not pinned: a tag can move, a digest cannot.",
            f"Use the image's digest: {RIGHT_FORM}.")
    repository, digest = text.split("@", 1)
    if not _REPOSITORY.fullmatch(repository):
        raise ImageRefError(f"The repository part {repository!r} of the {what} is not valid.",
                            f"Expected {RIGHT_FORM}.")
    return ImageRef(repository, parse_digest(digest, what=f"digest in the {what}"))


def _reject_whitespace(text: str, what: str) -> None:
    if any(ch.isspace() for ch in text):
        raise ImageRefError(f"The {what} {text!r} contains whitespace.",
                            "Remove spaces and line breaks; a reference is one unbroken string.")
