"""Upstream's BusyBox, built from its release tarball, for the images of Kubernetes' suite.

Upstream's ash passes on environment variables whose names are not shell identifiers
(``data-1=value-1``, from a ConfigMap through ``envFrom``), as its source says since 2018;
Debian patches that out of its busybox (``revert-9c143ce5...`` in its 1.35 and its 1.37),
and two conformance specs run ``sh -c env`` and look for such variables. So the suite's
images get BusyBox as upstream releases it: the release tarball comes from Debian's source
package (its ``.orig.tar.bz2`` is upstream's tarball, unmodified, and apt checks it
against the signed archive), built with upstream's ``defconfig``, static, as the official
busybox image is.

    binary = busybox.build_binary(cache_dir, "1.37.0", progress)
"""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from kubesalt_lab import build, rootfs
from kubesalt_lab.config import LabError

# The Debian suite whose source package carries each release (as the orig tarball).
RELEASE_SUITES = {"1.37.0": "trixie"}
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def work_dir(cache_dir, version):
    return Path(cache_dir) / "busybox" / version


def _apt(state, suite, *args):
    """apt with a private sources list (the suite's sources only) and private state: the
    host's own apt setup is not touched."""
    sources = state / "sources.list"
    if not sources.exists():
        state.mkdir(parents=True, exist_ok=True)
        sources.write_text(f"deb-src [signed-by={KEYRING}] {rootfs.debian_mirror()} {suite} main\n")
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    options = [
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State={state}",
        f"-oDir::Cache={state / 'cache'}",
        # The files are root's; apt's own user could not write them.
        "-oAPT::Sandbox::User=root",
    ]
    return subprocess.run(
        [args[0], *options, *args[1:]], capture_output=True, text=True, timeout=600, cwd=state
    )


def source_tarball(cache_dir, version, progress):
    """Upstream's release tarball of ``version``, from Debian's source package (checked by
    apt against the archive's signature)."""
    suite = RELEASE_SUITES.get(version)
    if suite is None:
        raise LabError(
            f"busybox {version}: no Debian suite known to carry it (known: "
            f"{', '.join(sorted(RELEASE_SUITES))}); add it to busybox.RELEASE_SUITES"
        )
    state = work_dir(cache_dir, version) / "apt"
    tarball = state / f"busybox_{version}.orig.tar.bz2"
    if tarball.is_file():
        return tarball
    progress(f"busybox {version}: the release tarball from Debian {suite}'s source package")
    for argv in (("apt-get", "update"), ("apt-get", "source", "--download-only", "busybox")):
        said = _apt(state, suite, *argv)
        if said.returncode != 0:
            raise LabError(
                f"busybox {version}: `{' '.join(argv)}` for Debian {suite} failed: "
                f"{(said.stderr or said.stdout).strip()[-400:]}"
            )
    if not tarball.is_file():
        found = sorted(p.name for p in state.glob("busybox_*.orig.tar.*"))
        raise LabError(f"busybox {version}: Debian {suite} has {found or 'no tarball'} instead")
    for index in ("lists", "cache"):  # the suite's indexes: about 25 MB, no longer needed
        shutil.rmtree(state / index, ignore_errors=True)
    return tarball


def build_binary(cache_dir, version, progress):
    """A static busybox ``version`` built with upstream's defconfig (cached); its path."""
    out = work_dir(cache_dir, version) / "busybox"
    if out.is_file():
        return out
    tarball = source_tarball(cache_dir, version, progress)
    tree = work_dir(cache_dir, version) / "src"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(tree)  # upstream's release tarball, checked by apt
    (source,) = [p for p in tree.iterdir() if p.is_dir()]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    log_path = work_dir(cache_dir, version) / "build.log"
    with open(log_path, "w") as log:
        for argv, label in (
            (["make", "defconfig"], "defconfig"),
            (["sed", "-i", "s/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/", ".config"], "static"),
            (["make", f"-j{os.cpu_count() or 1}"], "make"),
        ):
            code, tail = build.run_logged(
                argv, source, env, log, progress, f"busybox {version} ({label})", "lines"
            )
            if code != 0:
                raise LabError(
                    f"busybox {version}: {' '.join(argv)} failed:\n"
                    + "\n".join(tail)
                    + f"\nfull log: {log_path}"
                )
    said = subprocess.run([str(source / "busybox")], capture_output=True, text=True)
    if f"BusyBox v{version}" not in said.stdout:
        raise LabError(f"busybox {version}: the built binary says {said.stdout[:80]!r}")
    partial = out.with_name("busybox.partial")
    shutil.copyfile(source / "busybox", partial)
    partial.chmod(0o755)
    partial.replace(out)
    shutil.rmtree(tree)
    progress(f"busybox {version}: built ({out.stat().st_size >> 10} KiB, static)")
    return out


def applets(binary):
    """The applets a busybox binary provides (``busybox --list``)."""
    said = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True)
    return said.stdout.split()
