"""Losing etcd data on the lab's masters, and counting what a restore brought back: the
lab test of ``kubesalt.orch.etcd_restore`` and its benchmark share these."""

from kubesalt_lab import containers, workloads
from kubesalt_lab.config import LabError

CHUNK = 200


def destroy_member_data(lab, node, data_dir="/var/lib/etcd"):
    """etcd stopped on ``node`` and its member directory gone, as a lost disk leaves it."""
    containers.inside(
        lab, lab.node(node), ["sh", "-c", f"systemctl stop etcd && rm -rf {data_dir}/member"]
    )


def configmap(namespace, name):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"written": name},
    }


def write(lab, namespace, prefix, count):
    """``count`` ConfigMaps ``<prefix>-<n>`` in ``namespace`` (an apply per
    :data:`CHUNK`: the document travels on a command line); their names."""
    written = [f"{prefix}-{n}" for n in range(count)]
    for start in range(0, count, CHUNK):
        chunk = written[start : start + CHUNK]
        workloads.apply(lab, *(configmap(namespace, name) for name in chunk))
    return written


def names(lab, namespace, prefix=""):
    """The ConfigMaps in ``namespace`` whose names start with ``prefix``, sorted."""
    found = workloads.get(lab, "configmaps", "-n", namespace)["items"]
    return sorted(i["metadata"]["name"] for i in found if i["metadata"]["name"].startswith(prefix))


def etcd_state(lab, node):
    """``systemctl is-active etcd`` on ``node``."""
    shown = containers.inside(lab, lab.node(node), ["systemctl", "is-active", "etcd"],
                              check=False)  # fmt: skip
    return shown.stdout.strip()


def api_serves(lab):
    """Whether an apiserver answers ``/readyz`` (within 15 s)."""
    try:
        workloads.kubectl(lab, "get", "--raw", "/readyz", timeout=15)
        return True
    except LabError:
        return False
