"""Image layers made from Debian itself: ``debootstrap`` with a set of packages, then tar.

The lab's images that need more than one static program (the conformance suite's test
images, the ingress controller's nginx) sit on such a layer. It is made once per recipe
(suite, packages, what is done to the tree afterwards) and kept under the lab's cache:

    layer = debian_layer.cached(root, recipe_id, packages, finish, "e2e base", progress)

``finish(tree)`` adjusts the tree before it is packed (users, owners, links). The same
tree always gives the same layer: entries sorted, no times, no owner names.
"""

import gzip
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

from kubesalt_lab import images, rootfs

# Left out of a layer: what a container gets from its runtime (/dev, /proc, ...) and what
# no program reads (documentation, apt's lists and caches, logs).
SKIPPED = (
    "dev/",
    "proc/",
    "sys/",
    "run/",
    "tmp/",
    "var/cache/apt/",
    "var/lib/apt/lists/",
    "var/log/",
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/locale/",
)
# Entries of the tree that a layer keeps as empty directories (runtimes mount over them).
EMPTY = ("dev", "proc", "sys", "run", "tmp", "var/log")


def recipe_id(*parts):
    """A short id of what a layer is made from (text, or bytes such as a program)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
    return digest.hexdigest()[:16]


def _skipped(relative):
    return any((relative + "/").startswith(prefix) for prefix in SKIPPED) and (
        relative not in EMPTY
    )


def _normalized(info):
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def write_layer(tree, out):
    """Tar ``tree`` (sorted, normalized, without SKIPPED) gzipped into ``out``; returns the
    layer's diff id (the sha256 of the uncompressed tar). Owners and modes are kept."""
    tree = Path(tree)
    digest = hashlib.sha256()

    class _Hashing(io.RawIOBase):
        def __init__(self, sink):
            self.sink = sink

        def writable(self):
            return True

        def write(self, data):
            digest.update(data)
            self.sink.write(data)
            return len(data)

    def keep(info):
        if info.name != "." and _skipped(info.name):
            return None
        if info.isdev():
            return None
        return _normalized(info)

    with (
        open(out, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz,
    ):
        sink = _Hashing(gz)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(p.name for p in tree.iterdir()):
                tar.add(tree / entry, arcname=entry, recursive=True, filter=keep)
    return "sha256:" + digest.hexdigest()


def empty_runtime_dirs(tree):
    """No host name, and the directories a runtime mounts over left empty."""
    tree = Path(tree)
    (tree / "etc" / "hostname").unlink(missing_ok=True)
    for empty in EMPTY:
        target = tree / empty
        if target.is_dir() and not target.is_symlink():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def _current(stamp, recipe):
    return stamp.is_file() and stamp.read_text().strip() == recipe


def cached(root, recipe, packages, finish, label, progress):
    """The layer of ``recipe`` under ``root``, made first when missing or stale: Debian
    (minbase) with ``packages``, ``finish(tree)`` applied; an ``images.Layer``."""
    root = Path(root)
    tree, tree_stamp = root / "tree", root / "tree.recipe"
    stamp, layer_file, diff_file = root / "recipe", root / "layer.tar.gz", root / "diff-id"
    if _current(stamp, recipe) and layer_file.is_file():
        return images.Layer(layer_file.read_bytes(), diff_file.read_text().strip())
    root.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    if not _current(tree_stamp, recipe):
        shutil.rmtree(tree, ignore_errors=True)
        progress(f"{label}: debootstrap {rootfs.SUITE} with {', '.join(packages)} (once)")
        rootfs.debootstrap(tree, rootfs.debian_mirror(), progress, packages, label)
        finish(tree)
        empty_runtime_dirs(tree)
        tree_stamp.write_text(recipe + "\n")
    partial = layer_file.with_name(layer_file.name + ".partial")
    diff_id = write_layer(tree, partial)
    partial.replace(layer_file)
    diff_file.write_text(diff_id + "\n")
    stamp.write_text(recipe + "\n")
    shutil.rmtree(tree)
    tree_stamp.unlink()
    progress(f"{label}: layer {layer_file.stat().st_size >> 20} MiB")
    return images.Layer(layer_file.read_bytes(), diff_id)
