"""etcd_writer.py run inside a lab master while a membership change or an upgrade runs:
a put every 100 ms to every master, every acknowledged key read back at the end."""

import json
import subprocess
import threading
import time

from kubesalt_lab import containers
from tests.conftest import REPO

PKI = "/etc/kubernetes/pki"
WRITER_STOP = "/run/kubesalt-etcd-writer.stop"


class Writer:
    """etcd_writer.py inside master-1, talking to every master; stopped by a file."""

    def __init__(self, lab):
        self.lab = lab
        self.node = next(n for n in lab.nodes if n.id == "master-1")
        endpoints = ",".join(f"https://{n.ip}:2379" for n in lab.nodes if "master" in n.roles)
        self.argv = [
            "python3", str(REPO / "lab" / "etcd_writer.py"),
            "--endpoints", endpoints,
            "--cert", f"{PKI}/apiserver-etcd-client.crt",
            "--key", f"{PKI}/apiserver-etcd-client.key",
            "--cacert", f"{PKI}/etcd-ca.crt",
            "--stop-file", WRITER_STOP,
            "--prefix", f"/kubesalt/writer/{time.time_ns()}/",
        ]  # fmt: skip
        self.result = None

    def __enter__(self):
        containers.inside(self.lab, self.node, ["rm", "-f", WRITER_STOP])
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        time.sleep(2)  # some keys before the change
        return self

    def _run(self):
        self.result = containers.inside(self.lab, self.node, self.argv, check=False, timeout=900)

    def __exit__(self, *exc):
        time.sleep(2)  # and some after it
        containers.inside(self.lab, self.node, ["touch", WRITER_STOP])
        self.thread.join(timeout=120)

    @property
    def summary(self):
        assert self.result is not None, "the writer did not finish"
        assert isinstance(self.result, subprocess.CompletedProcess)
        return json.loads(self.result.stdout.strip().splitlines()[-1])
