"""
kubesalt_etcd_snapshot: snapshots of etcd on the masters, verified and kept with their sha256.

:func:`save` asks this master's own member for a snapshot (``etcdctl snapshot save``, which
checks the hash etcd appends), reads it back (``etcdutl snapshot status``: its revision,
key count and size), writes its sha256 beside it and only then gives it its name; the
oldest beyond pillar ``etcd:snapshots:keep`` are removed. ``kubesalt.etcd.snapshots``
schedules it every ``etcd:snapshots:interval_minutes`` on each master (a Salt schedule of
the minion); the upgrade orchestration takes one before it changes anything.

Files: ``paths:etcd_snapshot_dir`` (0700), each snapshot 0600 with ``<name>.sha256`` and
``<name>.json``. A snapshot holds every object of the cluster, Secrets too (encrypted as
``apiserver:encryption`` says: the key is not in it), and no CA key (those are files on the
CA host, never in etcd). It stays on the master that took it.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_etcd_snapshot.save
    salt master-1 kubesalt_etcd_snapshot.list
    salt master-1 kubesalt_etcd_snapshot.verify lab-20261204T220000Z-master-1.db
"""

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import time
from datetime import UTC, datetime

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.artifact
import kubesalt_core.etcd
import kubesalt_core.etcd_snapshot
import kubesalt_core.files
import kubesalt_core.pki

__func_alias__ = {"list_": "list"}

SAVE_TIMEOUT = 300
CHUNK = 1 << 20


def _config():
    return __salt__["kubesalt.config"]()


def _master_config():
    config = _config()
    me = __opts__["id"]
    if "master" not in (config["nodes"].get(me) or {}).get("roles", []):
        raise CommandExecutionError(f"{me} is not a master in pillar; etcd runs on masters")
    return config


def _run(argv, timeout, env=None):
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tools(config):
    etcdctl = kubesalt_core.artifact.executable(config, "etcd", "etcdctl")
    etcdutl = kubesalt_core.artifact.executable(config, "etcd", "etcdutl")
    return etcdctl, etcdutl if os.access(etcdutl, os.X_OK) else None


def _status(config, path):
    etcdctl, etcdutl = _tools(config)
    argv = kubesalt_core.etcd_snapshot.status_argv(etcdutl, etcdctl, path)
    proc = _run(argv, 120, env={**os.environ, "ETCDCTL_API": "3"})
    if proc.returncode != 0:
        raise CommandExecutionError(
            f"{os.path.basename(path)} is not a readable snapshot: "
            f"{(proc.stderr or proc.stdout).strip()[-300:]}"
        )
    try:
        return kubesalt_core.etcd_snapshot.parse_status(proc.stdout)
    except ValueError as err:
        raise CommandExecutionError(str(err)) from None


def _directory(config):
    directory = config["paths"]["etcd_snapshot_dir"]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


@contextlib.contextmanager
def _one_at_a_time(directory):
    """One save at a time on this master (the schedule's, an orchestration's, a hand's):
    each gets its own second, so its own name."""
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save(keep=None):
    """
    Take a snapshot of this master's etcd member, verify it, record its sha256, and keep
    the newest ``keep`` (default pillar ``etcd:snapshots:keep``). Returns its record:
    ``{name, path, sha256, revision, keys, size, taken, member, seconds}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_snapshot.save
    """
    config = _master_config()
    given = keep if keep is not None else config["etcd"]["snapshots"]["keep"]
    try:
        keep = int(given)
    except (TypeError, ValueError):
        keep = 0
    if keep < 1:
        raise SaltInvocationError(f"Invalid value for keep: {given!r}; expected 1 or more")
    me = __opts__["id"]
    directory = _directory(config)
    with _one_at_a_time(directory):
        return _save(config, me, directory, keep)


def _save(config, me, directory, keep):
    layout = kubesalt_core.pki.Layout.of(config)
    taken = datetime.now(UTC)
    name = kubesalt_core.etcd_snapshot.name_for(config["cluster"]["name"], me, taken)
    if os.path.exists(os.path.join(directory, name)):
        time.sleep(1)  # one taken this second already
        taken = datetime.now(UTC)
        name = kubesalt_core.etcd_snapshot.name_for(config["cluster"]["name"], me, taken)
    path = os.path.join(directory, name)
    partial = os.path.join(directory, f".{name}.part")
    etcdctl, _etcdutl = _tools(config)
    argv = [
        etcdctl,
        f"--endpoints={kubesalt_core.etcd.client_url(config['nodes'][me]['ip'])}",
        f"--cacert={layout.trusted_ca('etcd-ca')}",
        f"--cert={layout.cert('apiserver-etcd-client')}",
        f"--key={layout.key('apiserver-etcd-client')}",
        "snapshot",
        "save",
        partial,
    ]
    started = datetime.now(UTC)
    try:
        proc = _run(argv, SAVE_TIMEOUT, env={**os.environ, "ETCDCTL_API": "3"})
        if proc.returncode != 0:
            raise CommandExecutionError(
                f"etcdctl snapshot save failed: {(proc.stderr or proc.stdout).strip()[-400:]}"
            )
        os.chmod(partial, 0o600)
        status = _status(config, partial)
        digest = _sha256(partial)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    record = {
        "name": name,
        "path": path,
        "sha256": digest,
        **status,
        "taken": taken.isoformat(timespec="seconds"),
        "member": me,
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 2),
    }
    kubesalt_core.files.write_atomically(
        f"{path}.sha256", kubesalt_core.etcd_snapshot.sha256_line(digest, name).encode(), 0o600
    )
    kubesalt_core.files.write_atomically(
        f"{path}.json", json.dumps(record, indent=2).encode(), 0o600
    )
    os.rename(partial, path)
    record["removed"] = _prune(directory, keep)
    return record


def _prune(directory, keep):
    names = [n for n in os.listdir(directory) if kubesalt_core.etcd_snapshot.is_snapshot(n)]
    removed = kubesalt_core.etcd_snapshot.to_prune(names, keep)
    for name in removed:
        for suffix in ("", ".sha256", ".json"):
            target = os.path.join(directory, name + suffix)
            if os.path.exists(target):
                os.unlink(target)
    return removed


def list_():
    """
    The snapshots on this master, newest first: their records (``{name, sha256, revision,
    keys, size, taken, member}``).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_snapshot.list
    """
    config = _master_config()
    directory = config["paths"]["etcd_snapshot_dir"]
    if not os.path.isdir(directory):
        return []
    found = []
    for name in sorted(os.listdir(directory), reverse=True):
        if not kubesalt_core.etcd_snapshot.is_snapshot(name):
            continue
        try:
            with open(os.path.join(directory, f"{name}.json")) as stream:
                found.append(json.load(stream))
        except (OSError, json.JSONDecodeError):
            found.append({"name": name, "record": "missing"})
    return found


def verify(name):
    """
    Check snapshot ``name`` on this master: its sha256 is the one recorded beside it and
    etcdutl reads it. Returns its status; raises naming what does not match.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_snapshot.verify lab-20261204T220000Z-master-1.db
    """
    if not name or not kubesalt_core.etcd_snapshot.is_snapshot(os.path.basename(str(name))):
        raise SaltInvocationError(
            f"Invalid value for name: {name!r}; expected a snapshot file name such as "
            "<cluster>-20261204T220000Z-<member>.db (kubesalt_etcd_snapshot.list)"
        )
    config = _master_config()
    name = os.path.basename(str(name))
    path = os.path.join(config["paths"]["etcd_snapshot_dir"], name)
    if not os.path.isfile(path):
        raise CommandExecutionError(f"no snapshot {name} in {os.path.dirname(path)}")
    try:
        with open(f"{path}.sha256") as stream:
            recorded = kubesalt_core.etcd_snapshot.recorded_sha256(stream.read(), name)
    except (OSError, ValueError) as err:
        raise CommandExecutionError(f"{name}: its sha256 record cannot be read: {err}") from None
    actual = _sha256(path)
    if actual != recorded:
        raise CommandExecutionError(
            f"{name}: sha256 {actual} does not match the recorded {recorded}; the file "
            "changed since it was taken"
        )
    return {"name": name, "sha256": actual, **_status(config, path)}
