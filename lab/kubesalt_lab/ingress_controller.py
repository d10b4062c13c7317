"""NGINX's Ingress Controller in the lab: built from its source archive, made into an image.

The Go module proxy cannot serve ``github.com/nginx/kubernetes-ingress`` at 5.x (its module
path has no ``/v5``, so its tags are not module versions), so a site provides the release's
source archive the way it provides any other artifact, and the lab builds from it with
every dependency from the module proxy. The archive is pinned by its sha256 (SOURCES) and
found, in this order, at:

1. the file ``$KUBESALT_NGINX_INGRESS_ARCHIVE`` names;
2. ``<lab cache>/sources/<archive>``;
3. ``../shared/data/nginx-ingress/<archive>`` beside the repository.

Without it the rest of the cluster comes up and the lab says which file to put where; the
ingress pods then wait for their image.

The image is the one pillar names by default (``nginx/nginx-ingress:<version>``): the
controller, its open-source templates and njs script, on Debian 12 with ``nginx``,
``libnginx-mod-http-js`` and ``libnginx-mod-stream`` (nginx 1.22; HTTP/2 as the controller
writes it, ``http2 on;``, needs 1.25.1, so it stays off). The controller writes nginx's
configuration as user 101, so the directories it writes belong to 101 as in upstream's
image; binding ports 80 and 443 comes from the pod's ``ip_unprivileged_port_start``
sysctl rather than from file capabilities.

    archive = ingress_controller.find_archive(cache_dir, version)
    built = ingress_controller.build_controller(cache_dir, version, archive, progress)
    image = ingress_controller.image(built.path, version, ingress_controller.base_layer(...))
"""

import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubesalt_lab import build, debian_layer, images, rootfs, toolchain
from kubesalt_lab.config import REPO, LabError

NAME = "nginx_ingress"  # the versions: key and the artifacts folder
ARCHIVE_ENV = "KUBESALT_NGINX_INGRESS_ARCHIVE"
SHARED_DATA = REPO.parent / "shared" / "data" / "nginx-ingress"


@dataclass(frozen=True)
class Source:
    archive: str
    sha256: str
    top: str  # the archive's one top-level folder


SOURCES = {
    "5.5.4": Source(
        "kubernetes-ingress-5.5.4.tar.gz",
        "51e0ec4baea6ea2f01e20ca587024faa9ad56041dc25fc71b6400627451c091d",
        "kubernetes-ingress-5.5.4",
    ),
}

PACKAGE = "./cmd/nginx-ingress"
# The open-source templates the controller reads from its working directory (/), and the
# njs script its main template imports: where upstream's image puts them.
TEMPLATES = {
    "nginx.tmpl": "internal/configs/version1/nginx.tmpl",
    "nginx.ingress.tmpl": "internal/configs/version1/nginx.ingress.tmpl",
    "nginx.virtualserver.tmpl": "internal/configs/version2/nginx.virtualserver.tmpl",
    "nginx.transportserver.tmpl": "internal/configs/version2/nginx.transportserver.tmpl",
}
NJS_DIR = "internal/configs/njs"
LAYOUT = "1"  # bumped when the packed archive changes, so cached builds are packed again


def source_of(version):
    found = SOURCES.get(str(version).lstrip("v"))
    if found is None:
        raise LabError(
            f"versions:{NAME}: {version} has no pinned source archive; the lab builds "
            f"{', '.join(SOURCES)}"
        )
    return found


def candidates(cache_dir, version):
    """Where the archive is looked for, in order."""
    name = source_of(version).archive
    chosen = os.environ.get(ARCHIVE_ENV)
    if chosen:
        return [Path(chosen)]
    return [Path(cache_dir) / "sources" / name, SHARED_DATA / name]


def find_archive(cache_dir, version):
    """The source archive's path, or None when it is in none of the places looked at; an
    archive named by KUBESALT_NGINX_INGRESS_ARCHIVE that is missing is an error."""
    places = candidates(cache_dir, version)
    for place in places:
        if place.is_file():
            return place
    if os.environ.get(ARCHIVE_ENV):
        raise LabError(f"{ARCHIVE_ENV}={places[0]}: no such file")
    return None


def missing_message(cache_dir, version):
    source = source_of(version)
    return (
        f"ingress: NGINX Ingress Controller {version} is built from its source archive "
        f"{source.archive} (sha256 {source.sha256}), which is not here: put it at "
        f"{candidates(cache_dir, version)[0]} (or name it with {ARCHIVE_ENV}) and run `up` "
        "again; the rest of the cluster comes up, the ingress pods wait for their image"
    )


def _ldflags(version):
    return f"-s -w -X main.version={version}"


def _key(source, version):
    return {
        "sha256": source.sha256,
        "go": toolchain.GO_VERSION,
        "ldflags": _ldflags(version),
        "layout": LAYOUT,
    }


def _unpack(archive, source, workdir):
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        # Debian 12's Python has no extraction filters: refuse what could land outside.
        strays = [m.name for m in members if not _inside(m, source.top)]
        if strays:
            raise LabError(f"{archive} holds entries outside {source.top}/: {strays[:3]}")
        tar.extractall(workdir, members=members)
    tree = workdir / source.top
    if not (tree / "go.mod").is_file():
        raise LabError(f"{archive} does not hold {source.top}/go.mod")
    return tree


def _inside(member, top):
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts or not parts or parts[0] != top:
        return False
    if member.issym() or member.islnk():
        target = Path(member.linkname)
        return not target.is_absolute() and ".." not in target.parts
    return member.isfile() or member.isdir()


def _members(tree, binary):
    members = {"nginx-ingress": binary, "LICENSE": tree / "LICENSE"}
    members.update({name: tree / path for name, path in TEMPLATES.items()})
    for script in sorted((tree / NJS_DIR).glob("*.js")):
        members[f"njs/{script.name}"] = script
    return members


def build_controller(cache_dir, version, archive, progress):
    """Build the controller from ``archive`` (its sha256 checked first), or reuse a finished
    build of the same archive, toolchain and flags; returns the packed ``build.Built``:
    ``nginx-ingress-<version>-linux-amd64.tar.gz`` with the program, its templates, njs
    script and licence."""
    version = str(version).lstrip("v")
    source = source_of(version)
    actual = build.file_sha256(archive)
    if actual != source.sha256:
        raise LabError(
            f"{archive}: sha256 {actual}, expected {source.sha256} for NGINX Ingress "
            f"Controller {version}: not the pinned source archive"
        )
    key = _key(source, version)
    out = build.output_dir(cache_dir, NAME, version)
    found = build.cached(cache_dir, NAME, version, key)
    if found:
        progress(f"build {NAME} {version}: cached")
        return found[0]
    started = time.monotonic()
    progress(f"build {NAME} {version}: from {archive.name}, dependencies from the module proxy")
    go = toolchain.ensure(cache_dir, progress)
    tree = _unpack(archive, source, build.src_dir(cache_dir, NAME, version))
    staging = out.with_name(out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / ".bin").mkdir(parents=True)
    binary = staging / ".bin" / "nginx-ingress"
    argv = [str(go), "build", "-v", "-trimpath", "-buildvcs=false", "-o", str(binary),
            "-ldflags", _ldflags(version), PACKAGE]  # fmt: skip
    env = toolchain.environment(cache_dir)
    # Its go.sum does not list every module the build loads: complete it from the proxy.
    env.update({"CGO_ENABLED": "0", "GOFLAGS": env["GOFLAGS"] + " -mod=mod"})
    log_file = build.log_path(cache_dir, NAME, version)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_file, "w") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            code, tail = build.run_logged(
                argv, tree, env, log, progress, f"{NAME} {version}: nginx-ingress"
            )
        if code != 0:
            raise build.BuildError(
                f"build of {NAME} {version} from {archive} failed:\n"
                + "\n".join(tail)
                + f"\nfull log: {log_file}"
            )
        packed = staging / f"nginx-ingress-{version}-linux-amd64.tar.gz"
        digest = build.release_archive(packed, _members(tree, binary))
        shutil.rmtree(staging / ".bin")
        record = {
            "key": key,
            "component": NAME,
            "version": version,
            "source": source.archive,
            "seconds": round(time.monotonic() - started, 1),
            "files": [{"artifact": NAME, "file": packed.name, "sha256": digest}],
        }
        (staging / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    shutil.rmtree(tree.parent, ignore_errors=True)
    progress(f"build {NAME} {version}: done in {time.monotonic() - started:.1f}s")
    return build.Built(NAME, version, NAME, out / packed.name, digest)


# --- the image -------------------------------------------------------------------------------

# ca-certificates: the controller refuses to start without /etc/ssl/certs/ca-certificates.crt.
BASE_PACKAGES = ("nginx", "libnginx-mod-http-js", "libnginx-mod-stream", "ca-certificates")
NGINX_UID = 101
# What the controller writes as user 101 (upstream's image: chown -R 101:0, g=u).
WRITABLE = ("etc/nginx", "var/cache/nginx", "var/lib/nginx", "var/log/nginx")
BASE_RECIPE = "\n".join([rootfs.SUITE, *BASE_PACKAGES, f"writable-by={NGINX_UID}", "v1"])


def base_dir(cache_dir):
    return Path(cache_dir) / "ingress-base"


def _finish_base(tree):
    """Debian's nginx as the controller expects it: no site of Debian's own, the user
    nginx (101), and its directories owned by that user."""
    etc = tree / "etc" / "nginx"
    for leftover in ("nginx.conf", "sites-available", "sites-enabled", "modules-enabled"):
        path = etc / leftover
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for child in (etc / "conf.d").glob("*"):
        child.unlink()
    with open(tree / "etc" / "passwd", "a") as passwd:
        passwd.write(f"nginx:x:{NGINX_UID}:{NGINX_UID}:nginx user:/nonexistent:/bin/false\n")
    with open(tree / "etc" / "group", "a") as group:
        group.write(f"nginx:x:{NGINX_UID}:\n")
    for relative in WRITABLE:
        top = tree / relative
        top.mkdir(parents=True, exist_ok=True)
        for path in [top, *top.rglob("*")]:
            os.lchown(path, NGINX_UID, 0)
            if not path.is_symlink():
                mode = path.stat().st_mode & 0o777
                path.chmod(mode | ((mode & 0o700) >> 3))  # g=u


def base_layer(cache_dir, progress):
    """Debian 12 with nginx, njs and the stream module: an ``images.Layer``, made once."""
    recipe = debian_layer.recipe_id(BASE_RECIPE)
    return debian_layer.cached(
        base_dir(cache_dir), recipe, BASE_PACKAGES, _finish_base, "ingress base", progress
    )


def image(packed, version, base):
    """The controller's image from its packed build on ``base``: ``images.Image``."""
    files = {}
    with tarfile.open(packed) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            data = tar.extractfile(member).read()
            if member.name == "nginx-ingress":
                files["/nginx-ingress"] = (data, 0o755)
            elif member.name.startswith("njs/"):
                files[f"/etc/nginx/{member.name}"] = (data, 0o644)
            elif member.name == "LICENSE":
                files["/licenses/LICENSE"] = (data, 0o644)
            else:
                files[f"/{member.name}"] = (data, 0o644)
    needed = ("/nginx-ingress", *(f"/{template}" for template in TEMPLATES))
    missing = [name for name in needed if name not in files]
    if missing:
        raise LabError(f"{packed} lacks {', '.join(missing)}")
    writable = [f"/{path}" for path in WRITABLE] + [
        "/etc/nginx/conf.d", "/etc/nginx/secrets", "/etc/nginx/stream-conf.d", "/etc/nginx/njs"
    ]  # fmt: skip
    owned = {path: (NGINX_UID, 0) for path in writable}
    owned.update({path: (NGINX_UID, 0) for path in files if path.startswith("/etc/nginx/")})
    return images.Image(
        "docker.io",
        "nginx/nginx-ingress",
        str(version),
        files,
        links={
            "/var/log/nginx/access.log": "/dev/stdout",
            "/var/log/nginx/error.log": "/dev/stderr",
        },
        entrypoint=("/nginx-ingress",),
        user=str(NGINX_UID),
        base=(base,),
        workdir="/",
        directories={path: 0o775 for path in writable},
        owners=owned,
    )
