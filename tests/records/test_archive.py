"""A finished run's notebook goes into the store once: its metadata names where, its SHA-256 is of
the stored bytes; a store that refuses it leaves the notebook somewhere named, never lost."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nbformat

from rollback_helpers.errors import RecordStoreError
from rollback_helpers.records.archive import keep_or_explain, keep_record
from rollback_helpers.records.store import FsspecStore, open_store
from rollback_helpers.run.owner import working_copy
from rollback_helpers.ui.display import METADATA_KEY


def executed(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata[METADATA_KEY] = {"path": "path-a", "archive": "reserved-name.ipynb"}
    nbformat.write(nb, str(path))
    return path


def test_the_stored_record_names_its_location_and_its_hash_is_of_the_stored_bytes(
        tmp_path: Path) -> None:
    """A taken name moves on to -2, and the record's metadata says so."""
    store = open_store(str(tmp_path / "incidents"))
    store.put_new("r.ipynb", lambda _loc: b"someone else's")
    with working_copy("r.ipynb") as working:
        stored = keep_record(store, "r.ipynb", executed(working))
        folder = working.parent
    assert not folder.exists()  # papermill's working copy is cleaned up
    data = (tmp_path / "incidents" / "r-2.ipynb").read_bytes()
    assert stored.location == f"{tmp_path}/incidents/r-2.ipynb"
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert json.loads(data)["metadata"][METADATA_KEY]["archive"] == stored.location


class RefusingStore(FsspecStore):
    def _create(self, name: str, data: bytes) -> bool:
        raise RecordStoreError(f"Could not write {self.location_of(name)}: AccessDenied.",
                               "Check the bucket policy.")


def test_a_store_that_refuses_the_record_says_where_the_notebook_was_kept(tmp_path: Path) -> None:
    """Not archived: the message names the store, the reason and a kept copy."""
    store = RefusingStore(str(tmp_path / "incidents"))
    with working_copy("r.ipynb") as working:
        stored, problem = keep_or_explain(store, "r.ipynb", executed(working),
                                          lambda w: Path(str(tmp_path / "kept.ipynb")))
    assert stored is None
    assert problem.startswith("NOT ARCHIVED: Could not write") and "AccessDenied" in problem
    assert str(tmp_path / "kept.ipynb") in problem and "Check the bucket policy." in problem
