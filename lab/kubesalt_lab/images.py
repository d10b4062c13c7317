"""The container images the lab's cluster runs, made here and pushed to the lab's registry.

Nothing is pulled from a public registry: each image is an OCI image the lab writes itself,
from what it built and from Debian's packages, under the name the cluster's pillar uses
(upstream's), so containerd finds it through its registry mirror as an air-gapped site
would:

=================================  =====================================================
image                              made from
=================================  =====================================================
``registry.k8s.io/pause:<tag>``    ``build/pause/linux/pause.c`` of the pinned Kubernetes
                                   module, compiled static (``gcc -Os -static``)
``coredns/coredns:<version>``      the CoreDNS the lab built
``calico/kube-controllers:v<v>``   Calico's kube-controllers and check-status, as built
``busybox:<version>``              Debian's busybox-static (sh, wget, nc, nslookup, httpd)
=================================  =====================================================

An image is one layer plus its config, written reproducibly (fixed times, owners, order),
so the same inputs give the same digests and a second push sends nothing. Compressing a
layer is most of the work (about 3 s for each of the suite's images on 2 cores), so the
compressed layer is kept under the lab's cache, named by the digest of what it compresses.
"""

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from kubesalt_lab import build, recipes
from kubesalt_lab.config import LabError

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = (
    "sh", "ash", "wget", "nc", "nslookup", "httpd", "sleep", "cat", "echo", "ls", "hostname",
    "ip", "ping", "ps", "id", "env", "true", "false", "mkdir", "date", "head", "grep", "sed",
    "awk", "timeout", "dd", "wc", "seq", "tee", "printf", "test", "kill", "uname", "mount",
)  # fmt: skip

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Layer:
    """A layer made once and shared by several images: its gzipped tar and its diff id."""

    compressed: bytes
    diff_id: str


@dataclass(frozen=True)
class Image:
    """One image: where it goes (registry, repository, tag) and what is in it.

    files
        ``{path in the image: (bytes, mode)}``; ``links`` ``{path: target}``; ``base``
        layers it sits on (its own files are the top layer).
    """

    registry: str  # the registry pillar names it by (containerd mirrors it)
    repository: str
    tag: str
    files: dict
    links: dict = field(default_factory=dict)
    entrypoint: tuple = ()
    cmd: tuple = ()
    user: str = "0"
    base: tuple = ()
    workdir: str = ""
    directories: dict = field(default_factory=dict)  # {empty directory: mode}, top layer
    owners: dict = field(default_factory=dict)  # {path: (uid, gid)} of its entries; else root

    @property
    def reference(self):
        """As pillar and pod specs name it."""
        if self.registry == "docker.io":
            short = self.repository.removeprefix("library/")
            return f"{short}:{self.tag}"
        return f"{self.registry}/{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Blob:
    digest: str
    data: bytes
    media_type: str


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(image, cache=None):
    """The image's one layer: ``(gzipped tar, its diff id)``, reproducible.

    cache
        A directory of compressed layers named by their diff id: one found there is not
        compressed again; one made here is added.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = set()
        modes = {path.strip("/"): mode for path, mode in image.directories.items()}
        owners = {path.strip("/"): owner for path, owner in image.owners.items()}
        entries = sorted({*image.files, *image.links, *image.directories})
        for path in entries:
            parts = path.strip("/").split("/")
            if path not in image.directories:
                parts = parts[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, modes.get(directory, 0o755)
                    info.uid, info.gid = owners.get(directory, (0, 0))
                    tar.addfile(info)
            if path in image.directories:
                continue
            name = path.strip("/")
            if path in image.links:
                info = tarfile.TarInfo(name)
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, image.links[path], 0o777
                tar.addfile(info)
                continue
            data, mode = image.files[path]
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            info.uid, info.gid = owners.get(name, (0, 0))
            tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    diff_id = _sha(uncompressed)
    return _compressed(uncompressed, diff_id, cache), diff_id


def _compressed(uncompressed, diff_id, cache):
    kept = Path(cache) / f"{diff_id.removeprefix('sha256:')}.tar.gz" if cache else None
    if kept and kept.is_file():
        return kept.read_bytes()
    compressed = gzip.compress(uncompressed, compresslevel=6, mtime=0)
    if kept:
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_suffix(".partial")
        partial.write_bytes(compressed)
        partial.replace(kept)
    return compressed


def blobs(image, cache=None):
    """``(manifest bytes, [config blob, layer blobs...])`` of ``image`` as an OCI image
    (``cache``: see :func:`layer`)."""
    compressed, diff_id = layer(image, cache)
    layers = [*image.base, Layer(compressed, diff_id)]
    settings = {
        "Entrypoint": list(image.entrypoint) or None,
        "Cmd": list(image.cmd) or None,
        "User": image.user,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    }
    if image.workdir:
        settings["WorkingDir"] = image.workdir
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": [part.diff_id for part in layers]},
        "history": [{"created_by": "kubesalt-lab", "comment": image.reference}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_blob = Blob(_sha(config_bytes), config_bytes, MEDIA_CONFIG)
    layer_blobs = [Blob(_sha(part.compressed), part.compressed, MEDIA_LAYER) for part in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {
            "mediaType": MEDIA_CONFIG,
            "digest": config_blob.digest,
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": MEDIA_LAYER, "digest": blob.digest, "size": len(blob.data)}
            for blob in layer_blobs
        ],
    }
    return json.dumps(manifest, sort_keys=True).encode(), [config_blob, *layer_blobs]


# --- what each image is made of --------------------------------------------------------------


def _executable(path):
    return (Path(path).read_bytes(), 0o755)


def pause_source(kubernetes_dir):
    """``(pause.c, tag)`` from the Kubernetes module's tree (``build/pause``)."""
    makefile = (Path(kubernetes_dir) / "build" / "pause" / "Makefile").read_text()
    found = re.search(r"^TAG \?= (\S+)$", makefile, re.MULTILINE)
    if not found:
        raise LabError(f"no TAG in {kubernetes_dir}/build/pause/Makefile")
    return Path(kubernetes_dir) / "build" / "pause" / "linux" / "pause.c", found.group(1)


def compile_pause(source, tag, out):
    """pause.c compiled as upstream's image build does (``-Os -Wall -Werror -static``)."""
    proc = subprocess.run(
        ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{tag}-kubesalt", "-o", out,
         str(source)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise LabError(f"gcc could not build pause from {source}: {proc.stderr.strip()[-800:]}")
    return out


def pause(binary, tag):
    return Image(
        "registry.k8s.io", "pause", tag, {"/pause": _executable(binary)}, entrypoint=("/pause",)
    )


def coredns(binary, version):
    return Image(
        "docker.io",
        "coredns/coredns",
        version,
        {"/coredns": _executable(binary)},
        entrypoint=("/coredns",),
    )


def kube_controllers(controllers, check_status, version):
    return Image(
        "docker.io",
        "calico/kube-controllers",
        f"v{version}",
        {
            "/usr/bin/kube-controllers": _executable(controllers),
            "/usr/bin/check-status": _executable(check_status),
        },
        entrypoint=("/usr/bin/kube-controllers",),
    )


def busybox_version():
    said = subprocess.run([str(BUSYBOX)], capture_output=True, text=True).stdout
    found = re.search(r"BusyBox v(\d+\.\d+\.\d+)", said)
    if not found:
        raise LabError(f"{BUSYBOX} does not say its version (make setup installs busybox-static)")
    return found.group(1)


def busybox():
    """The general test image: Debian's static busybox with the applets tests use."""
    if not BUSYBOX.is_file():
        raise LabError(f"{BUSYBOX} is missing (make setup installs busybox-static)")
    links = {f"/bin/{applet}": "busybox" for applet in BUSYBOX_APPLETS}
    files = {
        "/bin/busybox": _executable(BUSYBOX),
        "/etc/passwd": (b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
                        0o644),
        "/etc/group": (b"root:x:0:\nnobody:x:65534:\n", 0o644),
        "/tmp/.keep": (b"", 0o644),
    }  # fmt: skip
    return Image("docker.io", "library/busybox", busybox_version(), files, links, cmd=("/bin/sh",))


def unpacked(archive, member, out_dir):
    """One member of a built release archive, written to ``out_dir``; its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        source = tar.extractfile(member)
        if source is None:
            raise LabError(f"{member} is not a file in {archive}")
        target = out_dir / Path(member).name
        with open(target, "wb") as handle:
            shutil.copyfileobj(source, handle)
    target.chmod(0o755)
    return target


def for_lab(cache_dir, versions, built, workdir):
    """Every image the lab's cluster runs, made from the lab's builds.

    built
        ``{component: [build.Built]}`` (``lifecycle.build_components``).
    workdir
        A folder for the programs taken out of their archives.
    """
    files = {b.artifact: b.path for found in built.values() for b in found}
    kubernetes_dir = build.module_dir(cache_dir, recipes.KUBERNETES, str(versions["kubernetes"]))
    source, tag = pause_source(kubernetes_dir)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    controllers = files["calico_kube_controllers"]
    return [
        pause(compile_pause(source, tag, workdir / "pause"), tag),
        coredns(unpacked(files["coredns"], "coredns", workdir), str(versions["coredns"])),
        kube_controllers(
            unpacked(controllers, "kube-controllers", workdir),
            unpacked(controllers, "check-status", workdir),
            str(versions["calico"]),
        ),
        busybox(),
    ]
