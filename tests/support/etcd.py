"""Real etcd members (Debian etcd-server) on free 127.0.0.1 ports, for tests and benchmarks.

Plain HTTP for now; members talk etcd's v3 JSON gateway. Processes are SIGKILLed at the
end: a member whose peers are already gone can take seconds to stop on SIGTERM.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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


def post_json(url, body, timeout=5):
    """POST ``body`` as JSON and return the decoded answer (raises urllib errors)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def b64(text):
    return base64.b64encode(text.encode()).decode()


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

    @property
    def client_urls(self):
        return [m.client_url for m in self.members]

    def call(self, path, body=None, member=0):
        """POST to the v3 JSON gateway of one member, e.g. ``call("/v3/cluster/member/list")``."""
        return post_json(self.members[member].client_url + path, body or {})

    def put(self, key, value, member=0):
        return self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)}, member)

    def get(self, key, member=0):
        kvs = self.call("/v3/kv/range", {"key": b64(key)}, member).get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def kill(self):
        for member in self.members:
            member.kill()


def start_cluster(size, workdir, timeout=30):
    """Start ``size`` etcd members under ``workdir`` and wait until every one answers."""
    workdir = Path(workdir)
    ports = free_ports(2 * size)
    cluster = EtcdCluster()
    for index in range(size):
        name = f"etcd-{index}"
        cluster.members.append(
            EtcdMember(
                name=name,
                client_url=f"http://127.0.0.1:{ports[2 * index]}",
                peer_url=f"http://127.0.0.1:{ports[2 * index + 1]}",
                data_dir=workdir / name,
                log_path=workdir / f"{name}.log",
            )
        )
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    token = f"kubesalt-test-{os.getpid()}-{ports[0]}"
    for member in cluster.members:
        member.data_dir.mkdir(mode=0o700, parents=True)
        argv = [
            ETCD_BINARY,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={initial}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={token}",
            "--logger=zap",
        ]
        with open(member.log_path, "wb") as log:
            member.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    try:
        _wait_ready(cluster, timeout)
    except BaseException:
        cluster.kill()
        raise
    return cluster


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
