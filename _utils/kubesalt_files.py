"""File writes shared by the kubesalt modules."""

import contextlib
import os
import shutil
import tempfile


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
