"""The pinned Go toolchain the lab builds every component with.

The toolchain is the Go module ``golang.org/toolchain`` at ``v0.0.1-go<version>.linux-amd64``
(what the go command itself fetches for ``GOTOOLCHAIN``), downloaded through the Go module
proxy by any bootstrap ``go`` on the machine (Debian's ``golang-go`` is enough: ``make
setup`` installs it) into the lab's module cache, and checked against the module sum pinned
here. Nothing is taken from the bootstrap ``go`` but the download.

    go = toolchain.ensure(cache_dir, progress)
    subprocess.run([go, "version"], env=toolchain.environment(cache_dir))
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

from kubesalt_lab.config import LabError

GO_VERSION = "1.26.8"  # the default; a recipe may pin another (recipes.Recipe.go)
TOOLCHAIN_MODULE = "golang.org/toolchain"
# Each pinned toolchain's go.sum line: the go command checks the download against it (it
# refuses a toolchain it cannot verify, and this machine reaches no checksum database).
TOOLCHAIN_SUMS = {
    "1.26.8": "h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=",
    # Calico 3.31's own release toolchain line: json-iterator's reflect2 (which Calico's
    # datastore encoding uses) misreads interned label maps when built with Go 1.26, and
    # Typha panics "makeslice: len out of range" on its first snapshot.
    "1.24.9": "h1:XCaHFxbYbAFzirf0FlQ6XUJ3WM+yR7FdDHZvREoPVDI=",
}
TOOLCHAIN_GO_MOD_SUM = "h1:8wlg68NqwW7eMnI1aABk/C2pDYXj8mrMY4TyRfiLeS0="
# Where Debian's golang-go puts its go, for a machine whose PATH has none.
BOOTSTRAP_CANDIDATES = ("/usr/lib/go/bin/go", "/usr/bin/go")


def toolchain_version(go_version=GO_VERSION):
    return f"v0.0.1-go{go_version}.linux-amd64"


def go_dir(cache_dir):
    return Path(cache_dir) / "go"


def environment(cache_dir, base=None):
    """The environment every go command of the lab runs in: module and build caches beside
    the rootfs cache (outside the repo, so a fresh clone reuses them), the project's
    toolchain and no other (``GOTOOLCHAIN=local``), and no checksum database (this machine
    reaches the module proxy only; the toolchain's own sum is checked here)."""
    root = go_dir(cache_dir)
    env = dict(base if base is not None else os.environ)
    for key in ("GOROOT", "GOPATH", "GOFLAGS", "GOBIN", "GOENV", "GOWORK"):
        env.pop(key, None)
    env.update(
        {
            "GOPATH": str(root / "path"),
            "GOMODCACHE": str(root / "mod"),
            "GOCACHE": str(root / "build"),
            "GOENV": "off",
            "GOWORK": "off",
            "GOTOOLCHAIN": "local",
            "GOSUMDB": env.get("GOSUMDB", "off"),
            # Module files writable, so the cache can be removed without a chmod first.
            "GOFLAGS": "-modcacherw",
            "HOME": env.get("HOME", "/root"),
        }
    )
    return env


def bootstrap_go():
    """A go command to download the toolchain with: PATH's, else Debian's golang-go."""
    found = shutil.which("go")
    if found:
        return found
    for candidate in BOOTSTRAP_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise LabError("no go command to fetch the pinned Go toolchain with (run `make setup`)")


def installed(cache_dir, go_version=GO_VERSION):
    """Path of the pinned toolchain's go binary when it is in the cache and answers."""
    goroot = go_dir(cache_dir) / "mod" / f"{TOOLCHAIN_MODULE}@{toolchain_version(go_version)}"
    go = goroot / "bin" / "go"
    if not os.access(go, os.X_OK):
        return None
    proc = subprocess.run(
        [str(go), "version"], capture_output=True, text=True, env=environment(cache_dir)
    )
    if proc.returncode == 0 and f"go{go_version} " in proc.stdout:
        return go
    return None


def ensure(cache_dir, progress, go_version=GO_VERSION, expected_sum=None):
    """The pinned toolchain's go binary, downloaded (and its sum checked) when missing."""
    if expected_sum is None:
        if go_version not in TOOLCHAIN_SUMS:
            raise LabError(
                f"go: no pinned sum for go{go_version}; pinned: {', '.join(TOOLCHAIN_SUMS)}"
            )
        expected_sum = TOOLCHAIN_SUMS[go_version]
    found = installed(cache_dir, go_version)
    if found:
        return found
    version = toolchain_version(go_version)
    progress(f"go: fetching the toolchain go{go_version} ({TOOLCHAIN_MODULE}@{version})")
    env = environment(cache_dir)
    # A scratch module whose go.sum pins the toolchain: the download is checked against it.
    scratch = go_dir(cache_dir) / "toolchain-fetch"
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "go.mod").write_text("module kubesalt.lab/toolchain\n")
    (scratch / "go.sum").write_text(
        f"{TOOLCHAIN_MODULE} {version} {expected_sum}\n"
        f"{TOOLCHAIN_MODULE} {version}/go.mod {TOOLCHAIN_GO_MOD_SUM}\n"
    )
    proc = subprocess.run(
        [bootstrap_go(), "mod", "download", "-json", f"{TOOLCHAIN_MODULE}@{version}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(scratch),
        timeout=900,
    )
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {}
    if proc.returncode != 0 or info.get("Error"):
        detail = info.get("Error") or proc.stderr.strip()[-1000:]
        raise LabError(f"go: could not fetch {TOOLCHAIN_MODULE}@{version}: {detail}")
    if expected_sum and info.get("Sum") != expected_sum:
        raise LabError(
            f"go: {TOOLCHAIN_MODULE}@{version} has sum {info.get('Sum')}, "
            f"expected {expected_sum}; not used"
        )
    goroot = Path(info["Dir"])
    # A module zip carries no file modes: the toolchain's programs need theirs back.
    for directory in (goroot / "bin", goroot / "pkg" / "tool" / "linux_amd64"):
        for program in directory.iterdir():
            program.chmod(0o755)
    found = installed(cache_dir, go_version)
    if not found:
        raise LabError(f"go: the toolchain in {goroot} does not answer `go version`")
    progress(f"go: go{go_version} ready in {goroot}")
    return found
