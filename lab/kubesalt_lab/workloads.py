"""Pods on the lab cluster, through kubectl on the first running master: what the worker tests and
benchmarks run, and what they read back (node readiness, pod addresses, Calico's blocks).

Every pod runs the lab's ``busybox`` image (Debian's busybox-static, served by the lab's
registry). Its ``wget -T`` crashes (a bug of that build): timeouts come from ``timeout``.
"""

import json
import time

from kubesalt_lab import containers
from kubesalt_lab.config import LabError

IMAGE = "busybox:1.35.0"
ADMIN = "/etc/kubernetes/admin.conf"
HTTP_PORT = 8080


def _first_master(lab):
    """The first master whose host runs (each master's admin.conf names its own apiserver)."""
    masters = [n for n in lab.ordered_nodes() if "master" in n.roles]
    return next((n for n in masters if containers.nspawn_pid(lab, n)), masters[0])


def kubectl(lab, *args, check=True, timeout=60, stdin=None):
    """``kubectl --kubeconfig admin.conf ARGS`` on the first running master: the
    CompletedProcess."""
    argv = ["kubectl", "--kubeconfig", ADMIN, *args]
    if stdin is not None:
        argv = ["sh", "-c", 'printf "%s" "$0" | "$@"', stdin, *argv]
    return containers.inside(lab, _first_master(lab), argv, check=check, timeout=timeout)


def apply(lab, *objects):
    """Server-side apply of ``objects`` (dicts)."""
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    return kubectl(lab, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=document)


def get(lab, *args):
    return json.loads(kubectl(lab, "get", *args, "-o", "json").stdout)


def ready_nodes(lab):
    """Names of the nodes whose Ready condition is True."""
    ready = []
    for node in get(lab, "nodes")["items"]:
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        if conditions.get("Ready") == "True":
            ready.append(node["metadata"]["name"])
    return sorted(ready)


def blocks(lab):
    """``{node: [cidr]}``: the IPAM blocks Calico confirmed for each node (not the blocks
    of load balancer addresses, which Calico affines to a virtual node)."""
    found = {}
    for item in get(lab, "blockaffinities.crd.projectcalico.org")["items"]:
        spec = item["spec"]
        if spec.get("type", "host") != "host":
            continue
        if spec.get("state") == "confirmed" and spec.get("deleted") != "true":
            found.setdefault(spec["node"], []).append(spec["cidr"])
    return {node: sorted(cidrs) for node, cidrs in found.items()}


def http_server(name, node=None, replicas=1, namespace="default", labels=None):
    """A Deployment of busybox ``httpd`` serving a page that names its pod, on ``node`` (or
    spread over the workers, one replica per node)."""
    labels = labels or {"app": name}
    spec = {
        "containers": [
            {
                "name": "httpd",
                "image": IMAGE,
                "command": [
                    "sh",
                    "-c",
                    'mkdir -p /www && echo "$HOSTNAME" > /www/index.html && '
                    f"exec httpd -f -vv -p {HTTP_PORT} -h /www",
                ],
                "ports": [{"containerPort": HTTP_PORT}],
                "readinessProbe": {"tcpSocket": {"port": HTTP_PORT}, "periodSeconds": 1},
            }
        ],
        "terminationGracePeriodSeconds": 1,
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    else:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": labels},
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def service(name, namespace="default", port=80, selector=None):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": selector or {"app": name},
            "ports": [{"port": port, "targetPort": HTTP_PORT, "protocol": "TCP"}],
        },
    }


def client_pod(name, node, namespace="default"):
    """A pod on ``node`` that sleeps, for running probes with ``kubectl exec``."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "sh", "image": IMAGE, "command": ["sleep", "3600"]}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def pods(lab, selector, namespace="default"):
    """``[{name, node, ip, phase, ready}]`` of the pods matching a label selector."""
    found = []
    for pod in get(lab, "pods", "-n", namespace, "-l", selector)["items"]:
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        found.append(
            {
                "name": pod["metadata"]["name"],
                "node": pod["spec"].get("nodeName"),
                "ip": pod["status"].get("podIP"),
                "phase": pod["status"].get("phase"),
                "ready": conditions.get("Ready") == "True",
            }
        )
    return sorted(found, key=lambda p: (p["node"] or "", p["name"]))


def wait_ready(lab, selector, count, namespace="default", timeout=120):
    """The ``count`` pods of ``selector``, once all of them are Running and Ready."""
    deadline = time.monotonic() + timeout
    while True:
        found = pods(lab, selector, namespace)
        if len(found) == count and all(p["phase"] == "Running" and p["ready"] for p in found):
            return found
        if time.monotonic() > deadline:
            raise LabError(f"pods {selector!r} not {count} ready after {timeout}s: {found}")
        time.sleep(0.5)


def exec_in(lab, pod, command, namespace="default", check=True, timeout=60):
    """``sh -c command`` inside ``pod`` (through the apiserver and the kubelet)."""
    return kubectl(
        lab, "exec", "-n", namespace, pod, "--", "sh", "-c", command, check=check, timeout=timeout
    )


def delete(lab, *args, namespace="default"):
    kubectl(lab, "delete", "-n", namespace, "--ignore-not-found", "--wait=false", *args)
