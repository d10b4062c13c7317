"""Build every component of the cluster from its Go module, pack it as upstream releases it.

For each recipe (``kubesalt_lab.recipes``) at the version the lab's pillar pins:

1. resolve the module version through the Go module proxy (an unknown version fails here,
   naming what exists, before anything is built or any host changes);
2. write a wrapper module under ``<cache>/build/src/<component>-<version>/`` that requires
   the module and repeats its replace directives (see ``recipes.wrapper_replaces``), and let
   ``go mod tidy`` complete it;
3. ``go build`` each program with the pinned toolchain, its version stamps and tags;
4. pack the release files (``kubernetes-server-linux-amd64.tar.gz`` with
   ``kubernetes/server/bin/...``, ``etcd-v3.6.5-linux-amd64.tar.gz``, ...) reproducibly,
   with their sha256, into ``<cache>/artifacts/<component>/<version>/``.

A finished build leaves ``build.json`` beside its files; the next build of the same key
(module version, toolchain, flags, layout) is skipped. Go's module and build caches live in
``<cache>/go``: a rebuild after a change of flags takes seconds. A failed build names the
component, module and version with the compiler's last lines and leaves every earlier build
as it was (files are built in a staging folder and renamed into place).

    results = build.build_all(lab.cache_dir, versions, progress)
"""

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kubesalt_lab import recipes, toolchain
from kubesalt_lab.config import LabError

HEARTBEAT = 30  # seconds between progress lines while a program compiles
TAIL = 25  # compiler lines quoted when a build fails


@dataclass(frozen=True)
class Built:
    """One release file a build produced."""

    component: str
    version: str
    artifact: str
    path: Path
    sha256: str

    @property
    def relative(self):
        """Its path under the artifacts folder, as served: ``kubernetes/1.37.0/<file>``."""
        return f"{self.component}/{self.version}/{self.path.name}"


def artifacts_dir(cache_dir):
    return Path(cache_dir) / "artifacts"


def src_dir(cache_dir, name, version):
    return Path(cache_dir) / "build" / "src" / f"{name}-{version}"


def module_dir(cache_dir, recipe, version):
    """Where Go's module cache keeps the tree of ``recipe``'s first module at ``version``
    (upper-case letters are escaped as ``!`` + lower case there)."""
    path = re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), recipe.modules[0])
    return Path(cache_dir) / "go" / "mod" / f"{path}@{recipe.module_version(version)}"


def log_path(cache_dir, name, version):
    return Path(cache_dir) / "build" / "logs" / f"{name}-{version}.log"


def output_dir(cache_dir, name, version):
    return artifacts_dir(cache_dir) / name / version


class BuildError(LabError):
    """A component did not build; the message says which, from what, and why."""


# --- the go command ------------------------------------------------------------------------


def _go(go, args, cache_dir, cwd, timeout=3600, extra_env=None):
    env = toolchain.environment(cache_dir)
    env.update(extra_env or {})
    try:
        return subprocess.run(
            [str(go), *args],
            cwd=str(cwd),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        raise LabError(f"go {' '.join(args)} did not finish in {timeout}s") from err


def _scratch(cache_dir):
    path = Path(cache_dir) / "build" / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def module_versions(go, cache_dir, module):
    """Every version of ``module`` the proxy lists (may be empty for a pseudo-only module)."""
    proc = _go(
        go, ["list", "-m", "-versions", "-json", module], cache_dir, _scratch(cache_dir), 120
    )
    try:
        return json.loads(proc.stdout).get("Versions") or []
    except ValueError:
        return []


def _download(go, cache_dir, module, version):
    proc = _go(
        go,
        ["mod", "download", "-json", f"{module}@{version}"],
        cache_dir,
        _scratch(cache_dir),
        1800,
    )
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {"Error": (proc.stderr or proc.stdout).strip()[-500:]}
    return info


def _what_exists(go, cache_dir, recipe):
    if recipe.known_versions:
        return ", ".join(recipe.known_versions())
    versions = [v for v in module_versions(go, cache_dir, recipe.modules[0]) if "-" not in v]
    versions.sort(key=lambda v: recipes.version_key(v.lstrip("v")))
    return ", ".join(v.lstrip("v") for v in versions[-12:]) or "none listed"


def resolve(go, cache_dir, recipe, version):
    """The module version for ``versions:<recipe.name>: version``, downloaded; raises
    BuildError naming the version and what exists when the proxy has no such version."""
    version = str(version).lstrip("v")
    try:
        module_version = recipe.module_version(version)
    except KeyError:
        raise BuildError(
            f"versions:{recipe.name}: {version} cannot be built: no module version is known "
            f"for it ({recipe.notes}); buildable: {_what_exists(go, cache_dir, recipe)}"
        ) from None
    infos = []
    for module in recipe.modules:
        info = _download(go, cache_dir, module, module_version)
        if info.get("Error"):
            raise BuildError(
                f"versions:{recipe.name}: {version} cannot be built: the Go module proxy has "
                f"no {module} {module_version} ({info['Error'].strip().splitlines()[-1][:200]}); "
                f"it has: {_what_exists(go, cache_dir, recipe)}"
            )
        infos.append(info)
    # The proxy names the commit of some module versions (Origin), not of all.
    commits = [(_read_json(i.get("Info")).get("Origin") or {}).get("Hash") for i in infos]
    commit = next((c for c in commits if c), "")
    time_ = _read_json(infos[0].get("Info")).get("Time", "")
    resolved = recipes.Resolved(version, module_version, commit, time_)
    go_mods = [Path(info["GoMod"]).read_text() for info in infos]
    return resolved, go_mods, infos


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (TypeError, OSError, ValueError):
        return {}


# --- one component -------------------------------------------------------------------------


def cached(cache_dir, name, version, key):
    """The Built files of a finished build of component ``name`` with ``key``, or None."""
    record = _read_json(output_dir(cache_dir, name, version) / "build.json")
    if record.get("key") != key:
        return None
    found = []
    for entry in record.get("files", []):
        path = output_dir(cache_dir, name, version) / entry["file"]
        if not path.is_file():
            return None
        found.append(Built(name, version, entry["artifact"], path, entry["sha256"]))
    return found


def run_logged(argv, cwd, env, log, progress, label, counting="packages compiled"):
    """Run a long build command, its output into ``log``; a progress line every HEARTBEAT
    s, with the number of output lines so far as ``counting`` (``go build -v`` prints a
    line per package, make one per file). Returns (returncode, last lines)."""
    started = time.monotonic()
    lines = []
    proc = subprocess.Popen(
        argv, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    done = threading.Event()

    def heartbeat():
        while not done.wait(HEARTBEAT):
            # `go test -c` says nothing while it compiles.
            said = f", {len(lines)} {counting} so far" if lines else ""
            progress(f"build {label}: {time.monotonic() - started:.0f}s{said}")

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        for line in proc.stdout:
            log.write(line)
            lines.append(line.rstrip("\n"))
        proc.wait()
    finally:
        done.set()
        beat.join()
    return proc.returncode, lines[-TAIL:]


def _program_env(program):
    env = {"CGO_ENABLED": "1" if program.cgo else "0"}
    return env


def _program_argv(go, program, flags, out):
    """``go build`` of a program, or ``go test -c`` of a test binary: a suite's package
    is a dependency here, so its tests' own imports are resolved from the module graph
    (``-mod=mod``), and vet is left out (it costs more than the compile)."""
    verb = ["test", "-c", "-vet=off", "-mod=mod"] if program.test else ["build", "-v"]
    return [str(go), *verb, "-trimpath", "-buildvcs=false", "-o", str(out), "-ldflags", flags]


def _build_programs(go, cache_dir, recipe, resolved, infos, workdir, bindir, log, progress):
    flags = recipes.ldflags(recipe, resolved)
    for program in recipe.programs:
        started = time.monotonic()
        program_flags = flags
        if program.static:
            program_flags += " -extldflags '-static'"
        if program.version_file:
            stamped = _source_file(infos, program.version_file).read_text().strip()
            program_flags += f" -X 'main.Version={stamped}'"
        argv = _program_argv(go, program, program_flags, bindir / program.name)
        if program.tags:
            argv += ["-tags", ",".join(program.tags)]
        argv.append(program.package)
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        env = toolchain.environment(cache_dir)
        env.update(_program_env(program))
        label = f"{recipe.name} {resolved.version}: {program.name}"
        code, tail = run_logged(argv, workdir, env, log, progress, label)
        if code != 0:
            raise BuildError(
                f"build of {recipe.name} {resolved.version} failed at {program.name} "
                f"(module {recipe.modules[0]} {resolved.module_version}, package "
                f"{program.package}):\n" + "\n".join(tail) + f"\nfull log: {log.name}"
            )
        progress(f"build {label} ({time.monotonic() - started:.1f}s)")


def _tidy(go, cache_dir, recipe, resolved, go_mods, workdir, log):
    replaces = recipes.wrapper_replaces(recipe, resolved, go_mods)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "go.mod").write_text(recipes.wrapper_go_mod(recipe, resolved, replaces))
    (workdir / "go.sum").unlink(missing_ok=True)
    (workdir / "tools.go").write_text(recipes.tools_go(recipe))
    proc = _go(go, ["mod", "tidy"], cache_dir, workdir, 3600)
    log.write(f"$ go mod tidy\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-TAIL:])
        raise BuildError(
            f"build of {recipe.name} {resolved.version}: go mod tidy failed for module "
            f"{recipe.modules[0]} {resolved.module_version}:\n{tail}\nfull log: {log.name}"
        )


def _source_file(infos, relative):
    for info in infos:
        path = Path(info["Dir"]) / relative
        if path.is_file():
            return path
    raise BuildError(f"{relative} is not in the module's tree ({infos[0]['Dir']})")


def _pack(recipe, resolved, infos, bindir, staging):
    """Write every release file of ``recipe`` into ``staging``; [(artifact, file, sha256)]."""

    def source(ref):
        if ref.startswith("source:"):
            return _source_file(infos, ref[len("source:") :])
        return bindir / ref

    packed = []
    for release in recipe.releases:
        name = recipes.release_filename(release, resolved.version)
        path = staging / name
        if release.single:
            shutil.copyfile(source(release.single), path)
            path.chmod(0o755 if not name.endswith(".yaml") else 0o644)
            digest = file_sha256(path)
        else:
            members = {
                m: source(s) for m, s in recipes.release_members(release, resolved.version).items()
            }
            digest = release_archive(path, members)
        packed.append((release.artifact, name, digest))
    return packed


def build_component(go, cache_dir, recipe, version, progress):
    """Build ``recipe`` at ``version`` (or reuse a finished build); returns [Built]."""
    version = str(version).lstrip("v")
    resolved, go_mods, infos = resolve(go, cache_dir, recipe, version)
    key = recipes.build_key(recipe, resolved, recipe.go)
    found = cached(cache_dir, recipe.name, version, key)
    if found:
        progress(f"build {recipe.name} {version}: cached ({len(found)} files)")
        return found
    started = time.monotonic()
    progress(
        f"build {recipe.name} {version}: module {recipe.modules[0]} {resolved.module_version}, "
        f"{len(recipe.programs)} programs"
    )
    workdir = src_dir(cache_dir, recipe.name, version)
    out = output_dir(cache_dir, recipe.name, version)
    staging = out.with_name(out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    bindir = staging / ".bin"
    bindir.mkdir(parents=True)
    log_file = log_path(cache_dir, recipe.name, version)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    go = toolchain.ensure(cache_dir, progress, recipe.go)
    try:
        with open(log_file, "w") as log:
            _tidy(go, cache_dir, recipe, resolved, go_mods, workdir, log)
            _build_programs(go, cache_dir, recipe, resolved, infos, workdir, bindir, log, progress)
        packed = _pack(recipe, resolved, infos, bindir, staging)
        shutil.rmtree(bindir)
        record = {
            "key": key,
            "component": recipe.name,
            "version": version,
            "module": recipe.modules[0],
            "module_version": resolved.module_version,
            "commit": resolved.commit,
            "go": recipe.go,
            "seconds": round(time.monotonic() - started, 1),
            "files": [{"artifact": a, "file": f, "sha256": s} for a, f, s in packed],
        }
        (staging / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    progress(f"build {recipe.name} {version}: done in {time.monotonic() - started:.1f}s")
    return [Built(recipe.name, version, a, out / f, s) for a, f, s in packed]


def check_versions(go, cache_dir, versions, names=None):
    """Resolve every component's version first, so a bad one stops the build before any
    compiling: {name: Resolved}."""
    found = {}
    for recipe in recipes.RECIPES:
        if names and recipe.name not in names:
            continue
        found[recipe.name] = resolve(go, cache_dir, recipe, versions[recipe.name])[0]
    return found


def build_all(cache_dir, versions, progress, names=None):
    """Build every recipe (or those in ``names``) at ``versions`` (the pillar's
    ``versions:`` mapping); returns {component: [Built]} and a summary row per component."""
    go = toolchain.ensure(cache_dir, progress)
    check_versions(go, cache_dir, versions, names)
    for recipe in recipes.RECIPES:
        if not names or recipe.name in names:
            toolchain.ensure(cache_dir, progress, recipe.go)
    results, rows = {}, []
    for recipe in recipes.RECIPES:
        if names and recipe.name not in names:
            continue
        started = time.monotonic()
        built = build_component(go, cache_dir, recipe, versions[recipe.name], progress)
        results[recipe.name] = built
        rows.append(
            [
                recipe.name,
                str(versions[recipe.name]),
                f"{time.monotonic() - started:.1f}s",
                ", ".join(b.path.name for b in built),
            ]
        )
    return results, rows


# --- release files -------------------------------------------------------------------------


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def release_archive(path, members):
    """Write a reproducible ``.tar.gz`` at ``path`` holding ``members`` ({path inside:
    source file}), with the directories they imply; returns its sha256.

    Fixed order, owner, mode and times: the same files always give the same archive and sum,
    whatever the archive is called.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with (
        open(partial, "wb") as raw,
        # No name and no time in the gzip header: the same files, the same sum.
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        directories = set()
        for member in sorted(members):
            parts = member.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory in directories or directory in (".", ""):
                    continue
                directories.add(directory)
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            source = Path(members[member])
            info = tarfile.TarInfo(member)
            info.size, info.mode = source.stat().st_size, 0o755
            with open(source, "rb") as data:
                tar.addfile(info, data)
    partial.replace(path)
    return file_sha256(path)


def sums_file(built):
    """``SHA256SUMS`` lines (``<sum>  <path>``) for built files, as releases publish them."""
    return "".join(f"{b.sha256}  {b.relative}\n" for b in sorted(built, key=lambda b: b.relative))


def write_sums(cache_dir, built):
    path = artifacts_dir(cache_dir) / "SHA256SUMS"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sums_file(built))
    return path
