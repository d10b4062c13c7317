"""Real etcd members (Debian etcd-server) on free 127.0.0.1 ports, for tests and benchmarks.

Plain HTTP, or mutual TLS on both the client and the peer side (``tls=``). Tests talk to
etcd's v3 JSON gateway. Processes are SIGKILLed at the end: a member whose peers are
already gone can take seconds to stop on SIGTERM.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kubesalt_core.etcd import b64, unb64

ETCD_BINARY = shutil.which("etcd") or "/usr/bin/etcd"


def free_ports(count):
    """Return ``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class MemberTLS:
    """PEM files one member serves with (client and peer side), all from the same CA."""

    ca: Path
    cert: Path
    key: Path
    peer_cert: Path
    peer_key: Path


def client_context(ca, cert=None, key=None):
    """An SSL context trusting ``ca``, presenting ``cert``/``key`` when given."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return context


def post_json(url, body, timeout=5, context=None):
    """POST ``body`` as JSON and return the decoded answer (raises urllib errors)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read() or b"{}")


@dataclass
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class EtcdCluster:
    """N members started together with ``initial-cluster-state: new``."""

    members: list[EtcdMember] = field(default_factory=list)
    # The SSL context calls go out with (None: plain HTTP).
    context: ssl.SSLContext | None = None

    @property
    def client_urls(self):
        return [m.client_url for m in self.members]

    def call(self, path, body=None, member=0):
        """POST to the v3 JSON gateway of one member, e.g. ``call("/v3/cluster/member/list")``."""
        return post_json(self.members[member].client_url + path, body or {}, context=self.context)

    def _kv(self, path, body, member, timeout=10):
        """A key-value call, retried on 503 like any etcd client does: for a moment after
        the leader leaves, etcd answers "leader changed" until a new one is elected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.call(path, body, member)
            except urllib.error.HTTPError as err:
                if err.code != 503 or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def put(self, key, value, member=0):
        return self._kv("/v3/kv/put", {"key": b64(key), "value": b64(value)}, member)

    def get(self, key, member=0):
        kvs = self._kv("/v3/kv/range", {"key": b64(key)}, member).get("kvs") or []
        return unb64(kvs[0]["value"]) if kvs else None

    def kill(self):
        for member in self.members:
            member.kill()


def _tls_args(tls):
    return [
        f"--cert-file={tls.cert}",
        f"--key-file={tls.key}",
        f"--trusted-ca-file={tls.ca}",
        "--client-cert-auth",
        f"--peer-cert-file={tls.peer_cert}",
        f"--peer-key-file={tls.peer_key}",
        f"--peer-trusted-ca-file={tls.ca}",
        "--peer-client-cert-auth",
    ]


def start_cluster(size, workdir, timeout=30, tls=None, client_context=None):
    """Start ``size`` etcd members under ``workdir`` and wait until every one answers.

    tls
        One :class:`MemberTLS` per member: serve clients and peers over mutual TLS.
    client_context
        The SSL context the cluster's own calls use (required with ``tls``).
    """
    workdir = Path(workdir)
    ports = free_ports(2 * size)
    scheme = "https" if tls else "http"
    cluster = EtcdCluster(context=client_context)
    for index in range(size):
        name = f"etcd-{index}"
        cluster.members.append(
            EtcdMember(
                name=name,
                client_url=f"{scheme}://127.0.0.1:{ports[2 * index]}",
                peer_url=f"{scheme}://127.0.0.1:{ports[2 * index + 1]}",
                data_dir=workdir / name,
                log_path=workdir / f"{name}.log",
            )
        )
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    token = f"kubesalt-test-{os.getpid()}-{ports[0]}"
    for index, member in enumerate(cluster.members):
        launch(member, initial, "new", token, tls[index] if tls else None)
    try:
        _wait_ready(cluster, timeout)
    except BaseException:
        cluster.kill()
        raise
    return cluster


def launch(member, initial_cluster, state, token, tls=None):
    """Start ``member``'s etcd process (its data dir is created 0700 if missing)."""
    member.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [
        ETCD_BINARY,
        f"--name={member.name}",
        f"--data-dir={member.data_dir}",
        f"--listen-client-urls={member.client_url}",
        f"--advertise-client-urls={member.client_url}",
        f"--listen-peer-urls={member.peer_url}",
        f"--initial-advertise-peer-urls={member.peer_url}",
        f"--initial-cluster={initial_cluster}",
        f"--initial-cluster-state={state}",
        f"--initial-cluster-token={token}",
        "--logger=zap",
        *(_tls_args(tls) if tls else []),
    ]
    with open(member.log_path, "ab") as log:
        member.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return member


def new_member(name, workdir, tls=False):
    """A not yet started member on two free ports (start it with :func:`launch`)."""
    client, peer = free_ports(2)
    scheme = "https" if tls else "http"
    workdir = Path(workdir)
    return EtcdMember(
        name=name,
        client_url=f"{scheme}://127.0.0.1:{client}",
        peer_url=f"{scheme}://127.0.0.1:{peer}",
        data_dir=workdir / name,
        log_path=workdir / f"{name}.log",
    )


def _wait_ready(cluster, timeout):
    deadline = time.monotonic() + timeout
    pending = list(range(len(cluster.members)))
    while pending:
        index = pending[0]
        member = cluster.members[index]
        if not member.alive():
            raise RuntimeError(f"{member.name} exited: {member.log_path.read_text()[-2000:]}")
        try:
            status = cluster.call("/v3/maintenance/status", member=index)
            if status.get("leader") not in (None, "0"):
                pending.pop(0)
                continue
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{member.name} not ready after {timeout}s; see {member.log_path}")
        time.sleep(0.1)
