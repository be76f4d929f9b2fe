"""Writing files that a crash or a full disk cannot leave half-written.

A file or folder is written under a temporary name beside its target, flushed to disk (`fsync`) and renamed into
place (`os.replace`, atomic on POSIX filesystems), so a reader sees the previous version or the complete new one.
A write that fails for lack of room becomes a `DiskFullError` naming the path, the bytes the write needed and the
bytes free there. Libraries report a full disk in their own ways (safetensors: `SafetensorError ... os error 28`;
`torch.save`: `RuntimeError ... unexpected pos`): `disk_full_error` recognises them by errno, by message, or by a
filesystem left with less room than the write needed.
"""
import errno
import os
import shutil
from pathlib import Path
from typing import Optional, Union

__all__ = ['DiskFullError', 'disk_full_error', 'atomic_write_text', 'fsync_tree', 'tree_bytes', 'format_bytes']

PathLike = Union[str, os.PathLike]
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_MESSAGES = ('No space left on device', 'os error 28', 'Disk quota exceeded', 'os error 122')


class DiskFullError(OSError):
    """There was no room (ENOSPC or a quota) to write `filename`; `needed` and `free` are in bytes."""

    def __init__(self, path: PathLike, needed: int, free: Optional[int], what: str = '', note: str = ''):
        self.needed, self.free = needed, free
        room = f', {format_bytes(free)} free there' if free is not None else ''
        self.message = (f'{path}: no space left on device writing {what or "it"}: it needs about '
                        f'{format_bytes(needed)} ({needed:,} bytes){room}. {note}').rstrip()
        super().__init__(errno.ENOSPC, self.message, str(path))

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # errors cross process boundaries (multiprocessing, gather_object) by pickling
        return _rebuild_disk_full, (self.filename, self.needed, self.free, self.message)


def _rebuild_disk_full(path, needed, free, message):
    error = DiskFullError(path, needed, free)
    error.message = message
    return error


def format_bytes(size: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if abs(size) < 1024 or unit == 'GiB':
            return f'{size:.0f} {unit}' if unit == 'B' else f'{size:.1f} {unit}'
        size /= 1024
    raise AssertionError  # unreachable


def free_bytes(path: PathLike) -> Optional[int]:
    """Free bytes on the filesystem holding `path` (or its nearest existing parent); None if unknown."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def disk_full_error(error: BaseException, path: PathLike, needed: int, what: str = '',
                    note: str = '') -> Optional[DiskFullError]:
    """A `DiskFullError` for `path` if `error` (raised while writing there) means the disk is full, else None."""
    if isinstance(error, DiskFullError):
        return error
    free = free_bytes(path)
    chain, seen = [error], set()
    while chain[-1].__cause__ or chain[-1].__context__:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if id(nxt) in seen:
            break
        seen.add(id(nxt))
        chain.append(nxt)
    full = any(isinstance(e, OSError) and e.errno in _FULL_ERRNOS or any(m in str(e) for m in _FULL_MESSAGES)
               for e in chain)
    # torch.save reports a full disk as 'unexpected pos': judge by the room left
    short = (free is not None and free < needed and isinstance(error, (OSError, RuntimeError))
             and not isinstance(error, (PermissionError, FileNotFoundError)))
    if full or short:
        return DiskFullError(path, needed, free, what, note)
    return None


def fsync_tree(path: PathLike) -> None:
    """Flush a file, or every file of a folder and the folder itself, to disk."""
    path = Path(path)
    files = [p for p in path.rglob('*') if p.is_file()] if path.is_dir() else [path]
    for file in files:
        with open(file, 'rb') as f:
            os.fsync(f.fileno())
    _fsync_dir(path if path.is_dir() else path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tree_bytes(path: PathLike) -> int:
    """Bytes of a file, or of all files in a folder (0 if it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file()) if path.is_dir() else 0


def atomic_write_text(path: PathLike, text: str, what: str = '', note: str = '') -> None:
    """Replace `path` with `text` (UTF-8) atomically: the old content or the new, never a mix; a full disk leaves
    the old file as it was and raises `DiskFullError`."""
    path = Path(path)
    data = text.encode('utf-8')
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        full = disk_full_error(e, path, len(data), what or path.name, note) if isinstance(e, Exception) else None
        if full is not None:
            raise full from e
        raise
    _fsync_dir(path.parent)
