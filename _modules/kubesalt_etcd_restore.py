"""
kubesalt_etcd_restore: every master's etcd restored from one snapshot, for a cluster whose
quorum is lost for good (``kubesalt.orch.etcd_restore`` runs these steps in order).

The snapshot goes from the master that holds it to the others directly, over mutual TLS
with the etcd peer certificates every master has (never through the salt-master):
:func:`offer` serves that one file from a transient systemd unit that stops by itself,
:func:`fetch` takes it and checks its sha256, :func:`withdraw` ends the offer. Then
:func:`restore` on each master: etcd stopped, what its data directory held moved aside
(never deleted), ``etcdutl snapshot restore`` with the new cluster's token, the restored
member put in place for the etcd user. The decisions are in
``_utils/kubesalt_core/etcd_restore.py``.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_etcd_restore.offer lab-20261204T220000Z-master-1.db
    salt master-2 kubesalt_etcd_restore.fetch master-1 lab-20261204T220000Z-master-1.db <sha256>
"""

import hashlib
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from datetime import UTC, datetime

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.artifact
import kubesalt_core.etcd
import kubesalt_core.etcd_restore
import kubesalt_core.etcd_snapshot
import kubesalt_core.files
import kubesalt_core.pki

OFFER_PORT = 2389
OFFER_UNIT = "kubesalt-etcd-snapshot-offer"
APISERVER_UNIT = "kube-apiserver.service"
CHUNK = 1 << 20

# The offer's server: one file, to clients with a certificate of the etcd CA.
_SERVER = r"""
import http.server, os, ssl, sys
host, port, cert, key, ca, path = sys.argv[1:7]
name = "/" + os.path.basename(path)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != name:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                self.wfile.write(chunk)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.minimum_version = ssl.TLSVersion.TLSv1_2
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.verify_mode = ssl.CERT_REQUIRED
server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def _config():
    return __salt__["kubesalt.config"]()


def _me(config):
    me = __opts__["id"]
    if "master" not in (config["nodes"].get(me) or {}).get("roles", []):
        raise CommandExecutionError(f"{me} is not a master in pillar; etcd runs on masters")
    return me


def _snapshot_path(config, name):
    name = os.path.basename(str(name or ""))
    if not kubesalt_core.etcd_snapshot.is_snapshot(name):
        raise SaltInvocationError(
            f"Invalid value for name: {name!r}; expected a snapshot file name "
            "(kubesalt_etcd_snapshot.list)"
        )
    return os.path.join(config["paths"]["etcd_snapshot_dir"], name)


def _run(argv, timeout=120):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err
    if proc.returncode != 0:
        raise CommandExecutionError(f"{argv[0]}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc.stdout


def _active_state(unit):
    shown = subprocess.run(
        ["systemctl", "show", "--property=ActiveState", "--value", unit],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return shown.stdout.strip()


def _wait_stopped(unit, seconds):
    deadline = time.monotonic() + seconds
    while _active_state(unit) not in ("inactive", "failed"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def stop_apiserver(seconds=5):
    """
    Stop this master's kube-apiserver, killing it when it has not stopped after
    ``seconds``: without etcd it may never finish a graceful shutdown (systemd would wait
    its whole stop timeout, 90 s by default); with etcd, a stop takes about a second.
    Returns ``{"stopped", "killed"}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_restore.stop_apiserver
    """
    _run(["systemctl", "stop", "--no-block", APISERVER_UNIT])
    killed = False
    if not _wait_stopped(APISERVER_UNIT, float(seconds)):
        _run(["systemctl", "kill", "--signal=SIGKILL", APISERVER_UNIT])
        killed = True
        if not _wait_stopped(APISERVER_UNIT, 30):
            raise CommandExecutionError(
                f"{APISERVER_UNIT} is still {_active_state(APISERVER_UNIT)} after SIGKILL"
            )
    return {"stopped": APISERVER_UNIT, "killed": killed}


def offer(name, seconds=600):
    """
    Serve snapshot ``name`` (verified first) to the other masters for at most ``seconds``,
    over mutual TLS with this master's etcd peer certificate. Returns ``{url, sha256}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_restore.offer lab-20261204T220000Z-master-1.db
    """
    config = _config()
    me = _me(config)
    path = _snapshot_path(config, name)
    checked = __salt__["kubesalt_etcd_snapshot.verify"](os.path.basename(path))
    settings = kubesalt_core.etcd.node_settings(config, me, kubesalt_core.pki.Layout.of(config))
    ip = config["nodes"][me]["ip"]
    subprocess.run(["systemctl", "stop", OFFER_UNIT], capture_output=True, check=False)
    _run([
        "systemd-run", f"--unit={OFFER_UNIT}", "--collect",
        f"--property=RuntimeMaxSec={int(seconds)}",
        "/usr/bin/python3", "-c", _SERVER, ip, str(OFFER_PORT),
        settings["peer_cert"], settings["peer_key"], settings["ca"], path,
    ])  # fmt: skip
    return {"url": f"https://{ip}:{OFFER_PORT}/{os.path.basename(path)}", **checked}


def withdraw():
    """
    End this master's offer.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_restore.withdraw
    """
    subprocess.run(["systemctl", "stop", OFFER_UNIT], capture_output=True, check=False)
    return True


def fetch(source, name, sha256):
    """
    Take snapshot ``name`` from master ``source``'s offer, with this master's etcd peer
    certificate, into this master's snapshot directory; refused unless its sha256 is
    ``sha256``. Returns its path.

    CLI Example:

    .. code-block:: bash

        salt master-2 kubesalt_etcd_restore.fetch master-1 lab-20261204T220000Z-master-1.db <sha256>
    """
    config = _config()
    me = _me(config)
    path = _snapshot_path(config, name)
    ip = (config["nodes"].get(source) or {}).get("ip")
    if not ip:
        raise SaltInvocationError(f"Invalid value for source: {source!r}; expected a master")
    settings = kubesalt_core.etcd.node_settings(config, me, kubesalt_core.pki.Layout.of(config))
    context = ssl.create_default_context(cafile=settings["ca"])
    context.load_cert_chain(settings["peer_cert"], settings["peer_key"])
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    partial = f"{path}.fetching"
    digest = hashlib.sha256()
    url = f"https://{ip}:{OFFER_PORT}/{os.path.basename(path)}"
    try:
        with (
            urllib.request.urlopen(url, context=context, timeout=60) as answer,
            open(partial, "wb") as out,
        ):
            os.chmod(partial, 0o600)
            while chunk := answer.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise CommandExecutionError(
                f"{os.path.basename(path)} from {source}: sha256 {digest.hexdigest()}, "
                f"expected {sha256}"
            )
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    line = kubesalt_core.etcd_snapshot.sha256_line(sha256, os.path.basename(path))
    kubesalt_core.files.write_atomically(f"{path}.sha256", line.encode(), 0o600)
    os.rename(partial, path)
    return {"path": path, "sha256": sha256}


def restore(name, token):
    """
    Restore this master's etcd member from snapshot ``name`` into the new cluster of every
    master pillar lists, with initial-cluster token ``token``: etcd is stopped, the
    snapshot restored, what the data directory held before moved aside (kept as
    ``<data dir>.removed-<time>``, as ``kubesalt_etcd_member.move_aside`` does). etcd is
    not started (the orchestration starts every member together).

    CLI Example:

    .. code-block:: bash

        salt master-2 kubesalt_etcd_restore.restore \
            lab-20261204T220000Z-master-1.db kubesalt-lab-restored-20261205T010203Z
    """
    config = _config()
    me = _me(config)
    path = _snapshot_path(config, name)
    __salt__["kubesalt_etcd_snapshot.verify"](os.path.basename(path))
    settings = kubesalt_core.etcd.node_settings(config, me, kubesalt_core.pki.Layout.of(config))
    data_dir = settings["data_dir"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    etcdutl = kubesalt_core.artifact.executable(config, "etcd", "etcdutl")
    _run(["systemctl", "stop", "etcd"])
    # The data dir itself stays (it may be a mount point): what it holds is moved aside,
    # and the restore is made inside it, then its member directory put in place.
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    aside = __salt__["kubesalt_etcd_member.move_aside"](data_dir)
    staged = os.path.join(data_dir, f"restoring-{stamp}")
    _run(
        kubesalt_core.etcd_restore.restore_argv(
            etcdutl, path, me, settings["peer_urls"][0],
            kubesalt_core.etcd_restore.initial_cluster(config), token, staged,
        ),
        timeout=600,
    )  # fmt: skip
    os.rename(os.path.join(staged, "member"), os.path.join(data_dir, "member"))
    shutil.rmtree(staged)
    _run(["chown", "-R", f"{settings['user']}:{settings['user']}", data_dir])
    os.chmod(data_dir, 0o700)
    return {"member": me, "data_dir": data_dir, "moved_aside": aside, "token": token}
