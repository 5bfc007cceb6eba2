"""One atomic writer: a file appears whole at its path, or the previous file stays untouched.

Every file bayesover writes (DataTrees, reports, checkpoints, ensembles) goes through
`atomic_write` (netCDF files through `atomic_write_netcdf`, which serialises them in memory
first): the writer fills a temporary file beside the destination (same directory, so the
rename stays on one file system), the data are flushed and fsynced, and `os.replace` swaps it
into place, which POSIX makes atomic. On any error (disk full, permission, a failing writer)
the temporary file is removed, the destination is left as it was, and an `OSError` names the
destination path.

Written by hand because neither the standard library nor the pinned dependencies offer an
atomic replace for writers that take a path (h5netcdf, numpy).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_path(path: Path) -> Path:
    """The temporary file beside `path` used while it is written (unique per process/thread)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextmanager
def atomic_path(
    path: str | os.PathLike, *, temporary: str | os.PathLike | None = None
) -> Iterator[Path]:
    """Yield a temporary path; when the block ends without error it replaces `path`.

    The block writes the temporary path however it likes (a library writer taking a file
    name). On error the temporary file is removed and the error, an `OSError` naming `path`
    for failures of the file system, propagates; `path` itself is never touched.
    `temporary` fixes the temporary file's name (default: unique per process and thread).
    """
    path = Path(path)
    tmp = temporary_path(path) if temporary is None else Path(temporary)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise _naming(error, path) from error
    except BaseException:
        _remove(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` to a temporary file, then rename it to `path` (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_netcdf(path: str | os.PathLike, data: Any) -> Path:
    """Write an `xarray.Dataset` or `xarray.DataTree` to netCDF-4 (h5netcdf) at `path`.

    The file is serialised in memory (`to_netcdf(None)`) and the bytes written by Python
    (`atomic_write_bytes`): HDF5 writing to a file that meets a full disk raises RuntimeErrors
    and can crash the process when its objects are freed, while a failing Python write is an
    OSError that leaves the destination untouched.
    """
    return atomic_write_bytes(path, bytes(data.to_netcdf(None, engine="h5netcdf")))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_writable_directory(path: str | os.PathLike, argument: str) -> Path:
    """Fail now, before any work, if a file at `path` could not be created.

    Creates and removes a probe file in the parent directory (permission bits alone do not
    tell: root ignores them, read-only mounts do not show in them).
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(
            f"`{argument}` {str(path)!r}: the directory {str(parent)!r} does not exist."
        )
    probe = temporary_path(parent / f"{path.name}.probe")
    try:
        probe.write_bytes(b"")
    except OSError as error:
        raise PermissionError(
            error.errno or errno.EACCES,
            f"`{argument}` {str(path)!r}: cannot write in {str(parent)!r} "
            f"({error.strerror or error})",
        ) from None
    _remove(probe)
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _naming(error: OSError, path: Path) -> OSError:
    """The same kind of OSError, its message naming the destination and that it is intact."""
    reason = error.strerror or str(error) or type(error).__name__
    message = f"could not write {str(path)!r}: {reason}; the previous file (if any) is unchanged"
    if error.errno is None:
        return OSError(message)
    new = type(error)(error.errno, message)
    new.filename = str(path)
    return new
