"""The images Kubernetes' own end-to-end suite runs, made by the lab and pushed to its
registry under the names the suite asks for, so no registry remapping is needed.

The names and tags come from the suite itself (``test/utils/image/manifest.go`` of the
Kubernetes module the cluster runs); what is in each image is made here:

======================  =================================================================
suite's image           made from
======================  =================================================================
agnhost (and its        agnhost built from ``test/images/agnhost`` of the same module, on
previous tag)           the Debian base below (upstream: Alpine with bind-tools, curl,
                        netcat-openbsd, iproute2, iperf, bash, socat), with its certificates,
                        users and ``/coredns`` (the CoreDNS the lab built)
busybox                 upstream's BusyBox at the tag's version, built from its release
                        (``kubesalt_lab.busybox``), alone, as upstream's image is
glibc-dns-testing       the Debian base (upstream: Debian bookworm-slim + dnsutils) and
                        ``/coredns``
nginx (both tags)       Debian's nginx on the Debian base, serving on port 80
kitten, nautilus        agnhost plus the page data of ``test/images/{kitten,nautilus}``
nonewprivs              ``test/images/nonewprivs`` built, setuid, on the Debian base
nonroot                 the Debian base, user 1234
sample-apiserver        ``k8s.io/sample-apiserver`` at the cluster's staging version
etcd                    etcd built from its module at the tag's version
pause                   the cluster's own (``images.pause``, pushed by ``up``)
======================  =================================================================

The Debian base is one layer shared by every image but busybox: Debian bookworm (minbase)
with the packages in BASE_PACKAGES, and the suite's BusyBox as ``sh`` (Alpine's ``sh``,
which upstream's images have, is BusyBox's ash too), made once with debootstrap and cached
with its layer under ``<cache>/e2e-base``. Images the suite names that are not in this
table (storage drivers, node performance, the private registry) are not made: the
conformance tests do not run them.

    refs = e2e_images.manifest(kubernetes_dir)
    base = e2e_images.base_layer(cache_dir, busybox_binary, progress)
    made = e2e_images.for_suite(refs, programs, kubernetes_dir, base, pause_reference)
"""

import io
import re
import shutil
import tarfile
from pathlib import Path

from kubesalt_lab import busybox, debian_layer, images, rootfs
from kubesalt_lab.config import LabError

BASE_PACKAGES = (
    "bash",
    "curl",
    "bind9-dnsutils",
    "netcat-openbsd",
    "iproute2",
    "iperf",
    "socat",
    "procps",
    "nginx-light",
)
BASE_RECIPE = "\n".join([rootfs.SUITE, *BASE_PACKAGES, "sh=busybox", "v2"])

# The suite's ImageIDs the lab makes (manifest.go's names).
MADE = (
    "Agnhost",
    "AgnhostPrev",
    "BusyBox",
    "Etcd",
    "GlibcDnsTesting",
    "Kitten",
    "Nautilus",
    "Nginx",
    "NginxNew",
    "Nonewprivs",
    "NonRoot",
    "Pause",
    "APIServer",
)


# --- the names the suite uses ----------------------------------------------------------------

_REGISTRY_FIELD = re.compile(r'^\s*(\w+Registry):\s*"([^"]+)",', re.MULTILINE)
_CONFIG = re.compile(
    r'^\s*configs\[(\w+)\]\s*=\s*Config\{list\.(\w+),\s*"([^"]+)",\s*"([^"]+)"\}', re.MULTILINE
)


def manifest(kubernetes_dir):
    """``{ImageID: "registry/name:tag"}`` as ``test/utils/image/manifest.go`` of the
    Kubernetes module at ``kubernetes_dir`` names them (without KUBE_TEST_REPO_LIST)."""
    path = Path(kubernetes_dir) / "test" / "utils" / "image" / "manifest.go"
    try:
        text = path.read_text()
    except OSError as err:
        raise LabError(f"the suite's image list is not readable: {err}") from None
    return parse_manifest(text)


def parse_manifest(text):
    start = text.find("initRegistry = RegistryList{")
    if start < 0:
        raise LabError("manifest.go: no initRegistry")
    block = text[start : text.index("}", start)]
    registries = dict(_REGISTRY_FIELD.findall(block))
    found = {}
    for image_id, field, name, tag in _CONFIG.findall(text):
        if field not in registries:
            raise LabError(f"manifest.go: {image_id} names an unknown registry field {field}")
        found[image_id] = f"{registries[field]}/{name}:{tag}"
    missing = [image_id for image_id in MADE if image_id not in found]
    if missing:
        raise LabError(f"manifest.go names none of {', '.join(missing)}: the image list changed")
    return found


def split_reference(reference):
    """``"registry.k8s.io/e2e-test-images/agnhost:2.66.1"`` → (registry, repository, tag)."""
    name, _, tag = reference.rpartition(":")
    registry, _, repository = name.partition("/")
    return registry, repository, tag


# --- the Debian base -------------------------------------------------------------------------


def base_dir(cache_dir):
    return Path(cache_dir) / "e2e-base"


def _finish_tree(busybox_binary):
    """What the images need of the base besides its packages: the suite's BusyBox as
    ``sh`` (see the module's docstring)."""

    def finish(tree):
        shutil.copyfile(busybox_binary, tree / "usr" / "bin" / "busybox")
        (tree / "usr" / "bin" / "busybox").chmod(0o755)
        sh = tree / "usr" / "bin" / "sh"
        sh.unlink(missing_ok=True)
        sh.symlink_to("busybox")

    return finish


def base_layer(cache_dir, busybox_binary, progress):
    """The shared Debian layer, made once (debootstrap, then tar): an ``images.Layer``."""
    recipe = debian_layer.recipe_id(BASE_RECIPE, Path(busybox_binary).read_bytes())
    return debian_layer.cached(
        base_dir(cache_dir),
        recipe,
        BASE_PACKAGES,
        _finish_tree(busybox_binary),
        "e2e base",
        progress,
    )


# --- the images ------------------------------------------------------------------------------


def _file(path, mode=0o644):
    return (Path(path).read_bytes(), mode)


def _executable(path):
    return _file(path, 0o755)


def _base_text(layer, path):
    """A text file of the base layer (``etc/passwd``), read from its tar."""
    with tarfile.open(fileobj=io.BytesIO(layer.compressed), mode="r:gz") as tar:
        member = tar.extractfile(path)
        if member is None:
            raise LabError(f"{path} is not a file of the e2e base")
        return member.read().decode()


def _agnhost_files(programs, kubernetes_dir, base):
    porter = Path(kubernetes_dir) / "test" / "images" / "agnhost" / "porter"
    # The users the suite's supplemental-groups test expects in the image.
    passwd = _base_text(base, "etc/passwd") + (
        "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"
    )
    group = _base_text(base, "etc/group") + (
        "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"
    )
    return {
        "/agnhost": _executable(programs["agnhost"]),
        "/coredns": _executable(programs["coredns"]),
        "/localhost.crt": _file(porter / "localhost.crt"),
        "/localhost.key": _file(porter / "localhost.key"),
        "/etc/passwd": (passwd.encode(), 0o644),
        "/etc/group": (group.encode(), 0o644),
    }


def busybox_image(refs, binary):
    """The suite's busybox: upstream's BusyBox alone, every applet a link in /bin."""
    registry, repository, tag = split_reference(refs["BusyBox"])
    links = {f"/bin/{applet}": "busybox" for applet in busybox.applets(binary)}
    files = {
        "/bin/busybox": (Path(binary).read_bytes(), 0o755),
        "/etc/passwd": (
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
            0o644,
        ),
        "/etc/group": (b"root:x:0:\nnobody:x:65534:\n", 0o644),
    }
    return images.Image(
        registry,
        repository,
        tag,
        files,
        links,
        cmd=("sh",),
        directories={"/tmp": 0o1777, "/root": 0o700},
    )


def busybox_version(refs):
    """The BusyBox version the suite's busybox tag names (``1.37.0-2`` → ``1.37.0``)."""
    return split_reference(refs["BusyBox"])[2].split("-")[0]


def for_suite(refs, programs, kubernetes_dir, base, pause_reference):
    """Every image of MADE, as ``images.Image``.

    refs
        ``manifest()``'s names. ``programs``: {name: path} of agnhost, nnp,
        sample-apiserver, coredns, etcd, etcdctl, etcdutl, busybox. ``base``:
        ``base_layer()``.
    """
    kubernetes_dir = Path(kubernetes_dir)

    def image(image_id, files=None, **settings):
        registry, repository, tag = split_reference(refs[image_id])
        return images.Image(registry, repository, tag, files or {}, base=(base,), **settings)

    agnhost = _agnhost_files(programs, kubernetes_dir, base)
    agnhost_links = {"/agnhost-2": "agnhost", "/usr/local/bin/iperf": "/usr/bin/iperf"}
    agnhost_settings = {"entrypoint": ("/agnhost",), "directories": {"/uploads": 0o755}}

    def webserver(image_id, page):
        html = kubernetes_dir / "test" / "images" / page / "html"
        files = {
            **agnhost,
            f"/{page}.jpg": _file(html / f"{page}.jpg"),
            "/data.json": _file(html / "data.json"),
        }
        return image(
            image_id, files, links=agnhost_links, cmd=("test-webserver",), **agnhost_settings
        )

    # nginx logs to the container's output, as upstream's nginx image does.
    nginx_links = {
        "/var/log/nginx/access.log": "/dev/stdout",
        "/var/log/nginx/error.log": "/dev/stderr",
    }
    made = [
        image("Agnhost", agnhost, links=agnhost_links, cmd=("pause",), **agnhost_settings),
        image("AgnhostPrev", agnhost, links=agnhost_links, cmd=("pause",), **agnhost_settings),
        busybox_image(refs, programs["busybox"]),
        image("GlibcDnsTesting", {"/coredns": _executable(programs["coredns"])}, cmd=("bash",)),
        image("Nginx", links=nginx_links, cmd=("nginx", "-g", "daemon off;")),
        image("NginxNew", links=nginx_links, cmd=("nginx", "-g", "daemon off;")),
        webserver("Kitten", "kitten"),
        webserver("Nautilus", "nautilus"),
        image(
            "Nonewprivs",
            {"/usr/local/bin/nnp": (Path(programs["nnp"]).read_bytes(), 0o4755)},
            cmd=("nnp",),
        ),
        image("NonRoot", user="1234", cmd=("sh",)),
        image(
            "APIServer",
            {"/sample-apiserver": _executable(programs["sample-apiserver"])},
            entrypoint=("/sample-apiserver",),
        ),
        image(
            "Etcd",
            {
                f"/usr/local/bin/{name}": _executable(programs[name])
                for name in ("etcd", "etcdctl", "etcdutl")
            },
        ),
    ]
    # The cluster's own pause image (pushed by `up`) is the suite's.
    if pause_reference != refs["Pause"]:
        raise LabError(
            f"the suite asks for {refs['Pause']}, the lab makes {pause_reference}: "
            "they come from the same Kubernetes module and should agree"
        )
    return made


def etcd_version(refs):
    """The etcd version the suite's etcd image tag names (``3.7.0-0`` → ``3.7.0``)."""
    tag = split_reference(refs["Etcd"])[2]
    return tag.split("-")[0]
