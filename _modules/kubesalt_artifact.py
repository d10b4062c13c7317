"""
kubesalt_artifact: install the cluster's binaries from pillar ``artifacts``, checked and atomic.

Each binary of the catalogue (``_utils/kubesalt_core/artifact.py``: which artifact, where in
its release archive, which roles, which units) comes from its artifact's source:

``source: url`` (with ``sha256``)
    The archive (or single file) is downloaded to a temporary file beside its cache
    (``paths:opt_dir/downloads``), hashed while it arrives and compared with ``sha256``
    before anything is used. A wrong sum deletes the download and raises; no binary is
    touched. A good one is kept there (one per artifact) so the other binaries of the same
    archive need no second download. Each binary is then written to a temporary file in its
    directory and renamed over the old one (one ``rename``: a reader sees the old or the new
    file, never half of one), mode 0755 (0644 for a manifest). A record beside it
    (``paths:opt_dir/installed/<binary>.json``: url, archive sha256, version, the binary's
    own sha256) lets the next run see that nothing changed without downloading anything.
``source: package``
    The distribution package (the state uses ``pkg.installed``).
``source: path``
    A binary already on the host (for an artifact of several binaries: the directory that
    holds them by name); kubesalt checks that each is there and executable.

CLI Example:

.. code-block:: bash

    salt worker-1 kubesalt_artifact.status
    salt worker-1 kubesalt_artifact.install containerd
"""

import contextlib
import hashlib
import json
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.artifact
import kubesalt_core.components
import kubesalt_core.files

log = logging.getLogger(__name__)

__virtual_aliases__ = ("k8s_artifact",)  # before 0.2 (README, "Module names")

CHUNK = 1 << 20
DOWNLOAD_TIMEOUT = 60


def _config():
    return __salt__["kubesalt.config"]()


def _entry(name):
    try:
        return kubesalt_core.artifact.binary(name)
    except KeyError as err:
        raise SaltInvocationError(str(err.args[0])) from None


def _spec(config, entry):
    spec = (config.get("artifacts") or {}).get(entry.artifact)
    if not spec:
        raise CommandExecutionError(
            f"pillar key artifacts:{entry.artifact} is not set; {entry.name} comes from it "
            "(source: url with url and sha256, source: package, or source: path)"
        )
    return spec


def _version(config, entry):
    return str(config["versions"][kubesalt_core.artifact.version_key(entry.artifact)])


def _target(config, entry):
    return os.path.join(config["paths"][entry.dest], entry.name)


def _record_path(config, entry):
    return os.path.join(config["paths"]["opt_dir"], "installed", f"{entry.name}.json")


def _file_sha256(path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _read_record(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None


def check(name):
    """
    What installing binary ``name`` would do, without doing it: ``path``, ``source``,
    ``version`` and ``reason`` (None when it is current).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_artifact.check kube-apiserver
    """
    return _check(_config(), _entry(name))[0]


def _check(config, entry):
    """``(row, spec)``: what :func:`check` returns, and the pillar spec it came from."""
    spec = _spec(config, entry)
    version = _version(config, entry)
    path = _target(config, entry)
    row = {"name": entry.name, "path": path, "source": spec["source"], "version": version}
    if spec["source"] == "url":
        row["reason"] = kubesalt_core.artifact.plan(
            spec, version, _file_sha256(path), _read_record(_record_path(config, entry))
        )
    elif spec["source"] == "path":
        row["path"] = kubesalt_core.artifact.path_source(spec, entry.artifact, entry.name)
        usable = os.path.isfile(row["path"]) and os.access(row["path"], os.X_OK)
        row["reason"] = None if usable else f"{row['path']} is not an executable file"
    else:
        row["package"] = spec["package"]
        row["reason"] = None
    return row, spec


def status(roles=None):
    """
    Every binary this node's roles need, with whether it is current and why not.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_artifact.status
    """
    if roles is None:
        roles = __salt__["kubesalt.node"]().get("roles", [])
    config = _config()
    return [_check(config, b)[0] for b in kubesalt_core.artifact.for_roles(roles)]


def fetch(url, sha256, dest):
    """
    Download ``url`` to ``dest``, replacing it only once the sha256 matched. On a mismatch
    or any error the partial download is removed and nothing at ``dest`` changes.

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_artifact.fetch https://example.org/runc.amd64 <sha256> /tmp/runc
    """
    directory = os.path.dirname(dest) or "."
    os.makedirs(directory, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=".download-", dir=directory)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError, ValueError) as err:
                reason = getattr(err, "reason", err)
                raise CommandExecutionError(f"downloading {url}: {reason}") from None
        if digest.hexdigest() != sha256:
            raise CommandExecutionError(
                f"sha256 mismatch for {url}: pillar says {sha256}, the download is "
                f"{digest.hexdigest()}; nothing was installed"
            )
        os.replace(partial, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return dest


def _download(config, entry, spec):
    """The verified archive for ``entry``'s artifact, downloaded at most once per run."""
    key = f"kubesalt_artifact.download.{spec['sha256']}"
    if key in __context__:
        return __context__[key]
    downloads = os.path.join(config["paths"]["opt_dir"], "downloads")
    dest = os.path.join(downloads, f"{entry.artifact}-{spec['sha256'][:16]}")
    if _file_sha256(dest) != spec["sha256"]:
        fetch(spec["url"], spec["sha256"], dest)
    # One archive per artifact: older ones are of no further use.
    for old in os.listdir(downloads):
        if old.startswith(f"{entry.artifact}-") and os.path.join(downloads, old) != dest:
            os.unlink(os.path.join(downloads, old))
    __context__[key] = dest
    return dest


@contextlib.contextmanager
def _binary_in(archive, member, url):
    """The binary as a file object: ``member`` of the tar ``archive``, or (no member) the
    download itself. Read in chunks, never whole into memory."""
    if not member:
        with open(archive, "rb") as handle:
            yield handle
        return
    candidates = {member, member.removeprefix("./"), f"./{member.removeprefix('./')}"}
    try:
        # As a stream, read only up to the member: a gzip archive cannot seek back without
        # decompressing again from its start, and listing it first decompresses it whole.
        with tarfile.open(archive, "r|*") as tar:
            info = next((i for i in tar if i.name in candidates), None)
            if info is None or not info.isfile():
                raise CommandExecutionError(
                    f"{url} has no regular file {member!r} (set artifacts:<name>:members "
                    "if the release lays out its files differently)"
                )
            yield tar.extractfile(info)
    except tarfile.TarError as err:
        raise CommandExecutionError(f"{url} is not a tar archive: {err}") from None


def install(name):
    """
    Install binary ``name`` from its artifact's ``source: url`` when :func:`check` says it
    is not current; returns ``{"path", "version", "reason"}`` (reason None: nothing done).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_artifact.install kube-apiserver
    """
    config = _config()
    entry = _entry(name)
    row, spec = _check(config, entry)
    if row["source"] != "url":
        raise CommandExecutionError(
            f"{name} comes from source {row['source']}; kubesalt_artifact installs url sources "
            "(the state installs packages with pkg.installed)"
        )
    if row["reason"] is None:
        return {"path": row["path"], "version": row["version"], "reason": None}
    archive = _download(config, entry, spec)
    member = kubesalt_core.artifact.member_of(entry, spec, row["version"])
    with _binary_in(archive, member, spec["url"]) as binary:
        # Binaries are executable; a manifest (Calico's CRDs) is not.
        mode = 0o644 if entry.dest == "manifest_dir" else 0o755
        kubesalt_core.files.write_atomically(row["path"], binary, mode)
    record = kubesalt_core.artifact.record_for(
        spec, row["version"], member, _file_sha256(row["path"])
    )
    kubesalt_core.files.write_atomically(
        _record_path(config, entry), json.dumps(record, indent=2).encode(), 0o644
    )
    log.info("kubesalt_artifact: installed %s %s (%s)", name, row["version"], row["reason"])
    return {"path": row["path"], "version": row["version"], "reason": row["reason"]}


def needed():
    """
    The catalogue's binaries this node installs: those of its roles (pillar
    ``kubesalt:nodes``), less those that would run none of its units (the apiserver proxy's
    on a worker that is also a master, or on every node of a site with
    ``cluster:apiserver_endpoint`` set).

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_artifact.needed
    """
    config = _config()
    roles = (config["nodes"].get(__opts__["id"]) or {}).get("roles") or []
    idle = set(kubesalt_core.components.idle_binaries(config, roles))
    return [b.name for b in kubesalt_core.artifact.for_roles(roles) if b.name not in idle]


def catalogue():
    """
    The artifact catalogue: every binary with its artifact, archive member, directory,
    roles and units.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_artifact.catalogue
    """
    return [
        {
            "name": b.name,
            "artifact": b.artifact,
            "member": b.member,
            "dest": b.dest,
            "roles": list(b.roles),
            "units": list(kubesalt_core.components.units_of_binary(b)),
        }
        for b in kubesalt_core.artifact.CATALOGUE
    ]
