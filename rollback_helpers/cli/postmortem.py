"""`rollback-runbook postmortem RECORD`: a Markdown draft made only from a verified record.

    rollback-runbook postmortem <path-or-url> [-o FILE] [--accept-unverified]

Verifies the record first, as ``verify-record`` does: a record that changed since it
was archived exits 8 (no published hash: 10), unless ``--accept-unverified``; then the
draft says, at its top, that it was not verified and why.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rollback_helpers.cli.inputs import write_output
from rollback_helpers.errors import ConfigError, RecordHashMissing, RecordTampered

NAME = "postmortem"


def add_parser(sub: Any) -> None:
    postmortem = sub.add_parser(NAME, help="a postmortem draft (Markdown) from a verified record")
    postmortem.add_argument("record", help="the record's path or URL, as history lists it")
    postmortem.add_argument("-o", "--output", default="",
                            help="write the draft here (default: stdout)")
    postmortem.add_argument("--accept-unverified", action="store_true",
                            help="draft from a record that does not verify, saying so in the draft")
    postmortem.add_argument("--sandbox-dir", default=None,
                            help="a kept drill world: its GitHub holds the drill's issue")


def run(args: argparse.Namespace) -> int:
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.records.archive import ensure_notebook, record_metadata
    from rollback_helpers.records.postmortem import Verification, draft
    from rollback_helpers.records.store import split_location
    from rollback_helpers.records.verify import CachedComments, verify_bytes
    from rollback_helpers.run.backends import github_factory

    cfg = load_config()
    factory = github_factory(cfg, sandbox_dir=args.sandbox_dir)
    store, name = split_location(args.record, github=factory)
    data = store.read(name)
    ensure_notebook(args.record, data)
    if record_metadata(data).get("backend", "real") == "sandbox" and not args.sandbox_dir:
        raise ConfigError(f"{args.record} was made on the sandbox: its issue is in the drill's "
                          "world, not on GitHub.",
                          "Pass --sandbox-dir <the drill's --sandbox-dir> (a drill run with "
                          "--sandbox-dir keeps its world).")
    comments = CachedComments(lambda: factory(cfg.github_repo), cfg.github_repo)
    try:
        verified = verify_bytes(args.record, data, comments)
    except (RecordTampered, RecordHashMissing) as exc:
        if not args.accept_unverified:
            raise
        print(f"warning: {exc.what} Drafting anyway (--accept-unverified).", file=sys.stderr)
        verification = Verification(False, f"{exc.what} The draft was made anyway "
                                           "(--accept-unverified): treat it as untrusted.")
    else:
        verification = Verification(True, f"SHA-256 `{verified.sha256}` matches the one "
                                          f"published on #{verified.issue} "
                                          f"({verified.comment_url}).")
    text = draft(args.record, data, verification)
    if not args.output:
        print(text)
        return 0
    out = write_output(args.output, text)
    print(f"Wrote the postmortem draft {out} ({'verified' if verification.verified else 'NOT verified'}).")
    return 0
