"""File writes shared by the kubesalt modules."""

import contextlib
import fcntl
import os
import shutil
import tempfile


def append_line(path, line, keep, mode=0o600):
    """Append ``line`` to the log file ``path`` (made with ``mode``); once it holds twice
    ``keep`` lines, rewrite it atomically with the newest ``keep``. Appends are locked, so
    concurrent writers do not interleave."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(line.rstrip("\n") + "\n")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    if len(lines) > 2 * keep:
        write_atomically(path, "\n".join(lines[-keep:]) + "\n", mode)


def write_atomically(path, data, mode):
    """Write ``data`` (bytes, str, or a binary file object, copied in chunks) to ``path``
    through a temp file in the same directory and a rename, with ``mode`` set before the
    first byte lands: a reader never sees half a file, and a key is never readable by
    others."""
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kubesalt-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            if hasattr(data, "read"):
                shutil.copyfileobj(data, handle, 1 << 20)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
