"""Writers run inside a lab master while a master is removed, replaced or upgraded, stopped
by a file: every acknowledged write is read back at the end.

- :class:`Writer`: ``lab/kubesalt_lab/etcd_writer.py``, a put every 100 ms to every etcd member.
- :class:`ApiWriter`: ``lab/kubesalt_lab/api_writer.py``, a ConfigMap every 100 ms through the
  apiservers in turn.
- :class:`ProxiedApiWriter`: the same through one worker's node-local apiserver proxy.
"""

import base64
import json
import subprocess
import threading
import time

import yaml

from kubesalt_lab import conformance, containers
from kubesalt_lab.config import REPO

PKI = "/etc/kubernetes/pki"


class _InsideWriter:
    script = None
    stop_file = None

    def __init__(self, lab, args):
        self.lab = lab
        self.node = next(n for n in lab.nodes if n.id == "master-1")
        self.argv = [
            "python3",
            str(REPO / "lab" / "kubesalt_lab" / self.script),
            "--stop-file",
            self.stop_file,
        ]
        self.argv += args
        self.result = None

    def __enter__(self):
        containers.inside(self.lab, self.node, ["rm", "-f", self.stop_file])
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        time.sleep(2)  # some writes before the change
        return self

    def _run(self):
        self.result = containers.inside(self.lab, self.node, self.argv, check=False, timeout=900)

    def __exit__(self, *exc):
        time.sleep(2)  # and some after it
        containers.inside(self.lab, self.node, ["touch", self.stop_file])
        self.thread.join(timeout=120)

    @property
    def summary(self):
        assert self.result is not None, "the writer did not finish"
        assert isinstance(self.result, subprocess.CompletedProcess)
        lines = self.result.stdout.strip().splitlines()
        assert lines, self.result.stderr[-2000:]
        return json.loads(lines[-1])


def _masters(lab):
    return [n for n in lab.nodes if "master" in n.roles]


class Writer(_InsideWriter):
    """etcd_writer.py inside master-1, talking to every master's etcd."""

    script = "etcd_writer.py"
    stop_file = "/run/kubesalt-etcd-writer.stop"

    def __init__(self, lab):
        super().__init__(
            lab,
            [
                "--servers", ",".join(f"https://{n.ip}:2379" for n in _masters(lab)),
                "--cert", f"{PKI}/apiserver-etcd-client.crt",
                "--key", f"{PKI}/apiserver-etcd-client.key",
                "--cacert", f"{PKI}/etcd-ca.crt",
                "--prefix", f"/kubesalt/writer/{time.time_ns()}/",
            ],
        )  # fmt: skip


class ApiWriter(_InsideWriter):
    """api_writer.py inside master-1, creating through every master's apiserver in turn."""

    script = "api_writer.py"
    stop_file = "/run/kubesalt-api-writer.stop"

    def __init__(self, lab):
        super().__init__(
            lab,
            [
                "--servers", ",".join(f"https://{n.ip}:6443" for n in _masters(lab)),
                "--cert", f"{PKI}/admin.crt",
                "--key", f"{PKI}/admin.key",
                "--cacert", f"{PKI}/kubernetes-ca.crt",
                "--run", str(time.time_ns()),
            ],
        )  # fmt: skip


class ProxiedApiWriter:
    """api_writer.py on this machine, inside a worker's network namespace only: every
    create goes through that worker's node-local apiserver proxy (127.0.0.1:6443), as the
    worker's own kubelet and kube-proxy reach the apiservers. It authenticates as the
    cluster admin (the lab's kubeconfig, written to a 0600 directory of the test)."""

    def __init__(self, lab, worker, workdir, timeout=10):
        document = yaml.safe_load(conformance.kubeconfig(lab))
        (user,) = document["users"]
        (cluster,) = document["clusters"]
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = {
            "admin.crt": user["user"]["client-certificate-data"],
            "admin.key": user["user"]["client-key-data"],
            "ca.crt": cluster["cluster"]["certificate-authority-data"],
        }
        for name, data in files.items():
            path = workdir / name
            path.write_bytes(base64.b64decode(data))
            path.chmod(0o600)
        node = next(n for n in lab.nodes if n.id == worker)
        self.stop_file = workdir / "stop"
        self.argv = [
            "ip", "netns", "exec", node.netns,
            "python3", str(REPO / "lab" / "kubesalt_lab" / "api_writer.py"),
            "--stop-file", str(self.stop_file),
            "--servers", "https://127.0.0.1:6443",
            "--cert", str(workdir / "admin.crt"),
            "--key", str(workdir / "admin.key"),
            "--cacert", str(workdir / "ca.crt"),
            "--timeout", str(timeout),
            "--run", str(time.time_ns()),
        ]  # fmt: skip
        self.proc = None
        self.output = None

    def __enter__(self):
        self.stop_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(2)  # some writes before the change
        return self

    def __exit__(self, *exc):
        time.sleep(2)  # and some after it
        self.stop_file.touch()
        try:
            self.output = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output = self.proc.communicate()

    @property
    def summary(self):
        assert self.output is not None, "the writer did not finish"
        lines = self.output[0].strip().splitlines()
        assert lines, self.output[1][-2000:]
        return json.loads(lines[-1])
