"""The user's state folder: where a killed run's working copy, and a record a store refused, wait
for ``recover`` whatever ``$TMPDIR`` is; private to the user (0700 folders, 0600 files)."""

from __future__ import annotations

import stat
from pathlib import Path

import platformdirs
import pytest

from rollback_helpers.errors import ConfigError
from rollback_helpers.records.archive import UNARCHIVED_PREFIX, rescue_copy
from rollback_helpers.records.state_dir import (
    STATE_VAR,
    private_folder,
    state_dir,
    state_root,
    write_private,
)
from rollback_helpers.run.owner import WORKING_PREFIX, RunOwner, read_owner, working_copy


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_variable_names_the_folder_and_without_it_the_platforms_state_folder_is_used(
        tmp_path: Path) -> None:
    assert state_root({STATE_VAR: str(tmp_path / "s")}) == tmp_path / "s"
    assert state_root({STATE_VAR: "  "}) == Path(platformdirs.user_state_dir("rollback-runbook"))
    assert state_root({}) == Path(platformdirs.user_state_dir("rollback-runbook"))


def test_a_missing_folder_is_created_private(tmp_path: Path) -> None:
    root = state_dir({STATE_VAR: str(tmp_path / "deep" / "state")})
    assert root.is_dir() and mode(root) == 0o700
    assert list(root.iterdir()) == []  # the writability probe leaves nothing


def test_an_unusable_folder_is_bad_input_naming_it_and_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError) as raised:
        state_dir({STATE_VAR: str(blocker / "state")})
    assert raised.value.exit_code == 2
    assert str(blocker / "state") in raised.value.what and STATE_VAR in raised.value.next_step


def test_a_working_copy_and_its_owner_are_private_and_in_the_state_folder(
        private_state_dir: Path, tmp_path: Path) -> None:
    owner = RunOwner.this_process(run_id="cafe00000002", path="path-a", env="staging",
                                  dry_run=True, backend="real", store=str(tmp_path), name="r.ipynb",
                                  argv=["run", "path-a"])
    with working_copy("r.ipynb", owner) as working:
        folder = working.parent
        assert folder.parent == private_state_dir and folder.name.startswith(WORKING_PREFIX)
        assert mode(folder) == 0o700
        assert working.is_file() and working.stat().st_size == 0  # not written yet
        working.write_text("{}")  # as papermill writes it: the mode stays
        assert {p.name: mode(p) for p in folder.iterdir()} == {"owner.json": 0o600,
                                                             "r.ipynb": 0o600}
        assert read_owner(folder) == owner
    assert not folder.exists()


def test_a_record_the_store_refused_is_kept_private_in_the_state_folder(
        private_state_dir: Path, tmp_path: Path) -> None:
    working = tmp_path / "r.ipynb"
    working.write_text('{"cells": []}')
    working.chmod(0o644)
    kept = rescue_copy(working)
    assert kept.parent.parent == private_state_dir
    assert kept.parent.name.startswith(UNARCHIVED_PREFIX)
    assert kept.read_text() == '{"cells": []}' and mode(kept) == 0o600


def test_a_private_write_replaces_the_file_at_once(tmp_path: Path) -> None:
    folder = private_folder("x-", {STATE_VAR: str(tmp_path)})
    target = write_private(folder / "f.json", "one")
    write_private(target, "two")
    assert target.read_text() == "two" and mode(target) == 0o600
    assert [p.name for p in folder.iterdir()] == ["f.json"]
