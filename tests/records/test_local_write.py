"""A local record is written whole under its name or not at all, with or without hard links:
never over an existing record, never a truncated file under a record's name."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rollback_helpers.errors import RecordStoreError
from rollback_helpers.records.local_write import create_local
from rollback_helpers.records.store import FsspecStore, open_store
from rollback_helpers.testing import exercise_write_once

RECORD = b"{" + b"x" * 10_000 + b"}"


def refuse(code: int, calls: list[tuple[str, str]]) -> Callable[..., None]:
    """What ``os.link`` (or ``os.replace``) does on a filesystem that cannot: counted, refused."""

    def refused(src: object, dst: object, *_args: object, **_kwargs: object) -> None:
        calls.append((str(src), str(dst)))
        raise OSError(code, os.strerror(code))

    return refused


def everything_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def no_hard_links(monkeypatch: pytest.MonkeyPatch, code: int = errno.EPERM) -> list[tuple[str, str]]:
    links: list[tuple[str, str]] = []
    monkeypatch.setattr(os, "link", refuse(code, links))
    return links


@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS])
def test_without_hard_links_a_store_is_still_write_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """link(2) refused as FAT, exFAT or a network mount refuse it: the store passes the
    conformance check (never overwrites, suffixes a taken name) and leaves no temporary file."""
    links = no_hard_links(monkeypatch, code)
    # the folder's listing would skip the taken name: the fallback itself must refuse it
    monkeypatch.setattr(FsspecStore, "_seen_taken", lambda _self: set())
    exercise_write_once(open_store(str(tmp_path / "incidents")))
    assert len(links) == 4  # every write went through the fallback (a.ipynb twice: taken)
    assert everything_in(tmp_path / "incidents") == ["a-2.ipynb", "a.ipynb", "drills",
                                                     "drills/d.ipynb"]


def test_without_links_or_rename_over_a_file_the_bytes_go_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where renaming over the reserved name is refused too, the bytes are written into the
    reservation: still write-once, still nothing left behind."""
    no_hard_links(monkeypatch)
    renames: list[tuple[str, str]] = []
    monkeypatch.setattr(os, "replace", refuse(errno.EPERM, renames))
    exercise_write_once(open_store(str(tmp_path / "incidents")))
    assert len(renames) == 3
    assert (tmp_path / "incidents" / "a-2.ipynb").read_bytes() == b"second"
    assert everything_in(tmp_path / "incidents") == ["a-2.ipynb", "a.ipynb", "drills",
                                                     "drills/d.ipynb"]


def test_an_existing_record_is_never_replaced_by_the_fallback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name is reserved with an exclusive create: a record already there stays as it was."""
    no_hard_links(monkeypatch)
    target = tmp_path / "run.ipynb"
    target.write_bytes(b"the first record")
    assert create_local(target, RECORD) is False
    assert target.read_bytes() == b"the first record"
    assert everything_in(tmp_path) == ["run.ipynb"]


def fills_the_disk_after(limit: int, name: str) -> Callable[[int, bytes | memoryview], int]:
    """``os.write`` on a disk with ``limit`` bytes left, for writes into ``name``."""
    real = os.write
    left = [limit]

    def write(fd: int, data: bytes | memoryview) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(name):
            return real(fd, data)
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = real(fd, bytes(data[:left[0]]))
        left[0] -= written
        return written

    return write


def test_a_full_disk_in_the_fallback_leaves_no_file_under_the_records_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing in place, the disk fills half-way: the half-written reservation is deleted and
    the error names the disk; the folder is as empty as before."""
    no_hard_links(monkeypatch)
    monkeypatch.setattr(os, "replace", refuse(errno.EPERM, []))
    monkeypatch.setattr(os, "write", fills_the_disk_after(4096, "run.ipynb"))
    store = open_store(str(tmp_path / "incidents"))
    with pytest.raises(RecordStoreError, match="No space left") as raised:
        store.put_new("run.ipynb", lambda _location: RECORD)
    assert str(tmp_path / "incidents" / "run.ipynb") in raised.value.what
    assert everything_in(tmp_path / "incidents") == []
    assert store.list_records() == []


def test_a_full_disk_before_the_name_is_taken_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary copy cannot be flushed (ENOSPC): the record's name is never touched."""
    links = no_hard_links(monkeypatch)

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        create_local(tmp_path / "run.ipynb", RECORD)
    assert links == [] and everything_in(tmp_path) == []


def test_another_link_error_is_reported_not_worked_around(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error is not "no hard links here": it is the store's error, and nothing is left."""
    no_hard_links(monkeypatch, errno.EIO)
    store = open_store(str(tmp_path / "incidents"))
    with pytest.raises(RecordStoreError, match="Input/output error"):
        store.put_new("run.ipynb", lambda _location: RECORD)
    assert everything_in(tmp_path / "incidents") == []
