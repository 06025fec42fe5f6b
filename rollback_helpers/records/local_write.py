"""Writing one record into a local folder: all of it under its name, or nothing there.

The bytes go to a hidden temporary name in the same folder first (written and
flushed to disk), then the record's name is made to point at them:

- a **hard link** from the temporary name (``os.link`` fails if the name exists,
  so a record is never overwritten), on every filesystem that has hard links;
- on one that has none (FAT and exFAT drives, some network and FUSE mounts:
  ``link`` fails with ``EPERM``, ``ENOTSUP``, ``EXDEV``, …), the name is first
  **reserved** with an exclusive create (``O_CREAT | O_EXCL``: fails if it
  exists), then the temporary file is **renamed** over that empty reservation
  (our own file, so nothing is overwritten); where even that rename is refused,
  the bytes are written into the reserved file and flushed. Any failure after
  the reservation deletes it.

So a full disk, a refused write or an error leaves no file under the record's
name (``history`` would list it, ``verify-record`` would call it damaged) and
the temporary file is always removed. A crash between the reservation and the
rename, on a filesystem without hard links, can leave an empty file: never a
truncated record.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

# link(2)'s answers on a filesystem (or mount) that has no hard links
NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                           errno.ENOSYS, errno.EMLINK})


def create_local(target: Path, data: bytes) -> bool:
    """Create ``target`` holding ``data``; False (and nothing written) if it already exists."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # the folder was replaced by a file: not "the name is taken"
        raise NotADirectoryError(f"{target.parent} is a file, not a folder") from None
    partial = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        with open(partial, "xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(partial, target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            return _create_without_link(partial, target, data)
    finally:
        partial.unlink(missing_ok=True)
    return True


def _create_without_link(partial: Path, target: Path, data: bytes) -> bool:
    """Reserve ``target`` (exclusive create), then rename ``partial`` over the reservation, or
    write ``data`` into it where renaming over a file is refused; delete it on any failure."""
    try:
        reserved = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        try:
            os.replace(partial, target)
        except OSError:  # no rename over a file here either: the bytes go in place
            _write_all(reserved, data)
    except BaseException:
        target.unlink(missing_ok=True)  # our own reservation: never someone else's record
        raise
    finally:
        os.close(reserved)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)
