"""Traffic that has to keep flowing while nodes are drained and upgraded: a Deployment behind
a PodDisruptionBudget and a Service, and a client on every worker that asks it five times a
second and logs every answer.

The clients are a DaemonSet: a drain leaves DaemonSet pods in place, so they keep asking
while their node is drained, its kubelet replaced and restarted. They ask the Service's
cluster IP (not its name: CoreDNS's own pods move during a drain too, and a failed lookup
is not a failed request to the Service).
"""

from kubesalt_lab import workloads
from kubesalt_lab.config import LabError

ASK_INTERVAL = 0.2
# Longer than kube-proxy takes to drop an endpoint on a busy machine (up to 7 s seen while
# the whole suite ran): the pod serves until no client is sent to it any more.
PRESTOP_SECONDS = 10
# Failures less than this many seconds apart belong to one burst.
BURST_GAP = 3


def budget(name, selector, min_available, namespace="default"):
    """A PodDisruptionBudget keeping ``min_available`` pods of ``selector``."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": selector}},
    }


def askers(name, address, namespace="default"):
    """A DaemonSet whose pods ask ``http://address/`` every ASK_INTERVAL seconds, logging
    ``ok`` or ``fail <epoch seconds>`` per request."""
    loop = (
        "while true; do "
        f"if timeout 2 wget -q -O /dev/null http://{address}/; then echo ok; "
        'else echo "fail $(date +%s)"; fi; '
        f"sleep {ASK_INTERVAL}; done"
    )
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "ask", "image": workloads.IMAGE, "command": ["sh", "-c", loop]}
                    ],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


def server(name, replicas, namespace="default"):
    """``workloads.http_server`` as a service that is drained well: a pod told to stop
    keeps serving for PRESTOP_SECONDS, while every kube-proxy drops it from the Service,
    and only then exits."""
    deployment = workloads.http_server(name, replicas=replicas, namespace=namespace)
    spec = deployment["spec"]["template"]["spec"]
    spec["terminationGracePeriodSeconds"] = PRESTOP_SECONDS + 5
    spec["containers"][0]["lifecycle"] = {
        "preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}
    }
    return deployment


def start(lab, name, replicas=2, namespace="default"):
    """The Deployment ``name`` (spread over the workers), its Service, a budget keeping one
    pod, and the askers ``<name>-askers``; returns once every pod is ready."""
    workloads.apply(
        lab,
        server(name, replicas, namespace),
        workloads.service(name, namespace=namespace),
        budget(name, {"app": name}, replicas - 1, namespace=namespace),
    )
    workloads.wait_ready(lab, f"app={name}", replicas, namespace)
    address = workloads.get(lab, "service", name, "-n", namespace)["spec"]["clusterIP"]
    workloads.apply(lab, askers(f"{name}-askers", address, namespace))
    workers = [n for n in lab.nodes if "worker" in n.roles]
    workloads.wait_ready(lab, f"app={name}-askers", len(workers), namespace)


def answers(lab, name, namespace="default"):
    """``{node: {"ok": n, "fail": n, "restarts": n, "failed_at": [epoch seconds],
    "longest_burst_seconds": s}}`` from the askers' logs (a restarted container's earlier
    log counted too)."""
    counted = {}
    for pod in workloads.get(lab, "pods", "-n", namespace, "-l", f"app={name}-askers")["items"]:
        node = pod["spec"]["nodeName"]
        statuses = pod["status"].get("containerStatuses") or [{}]
        restarts = statuses[0].get("restartCount", 0)
        lines = []
        for previous in (True, False) if restarts else (False,):
            flag = ["--previous"] if previous else []
            shown = workloads.kubectl(
                lab, "logs", "-n", namespace, pod["metadata"]["name"], *flag, timeout=120
            )
            lines += shown.stdout.splitlines()
        failed = [int(line.split()[1]) for line in lines if line.startswith("fail ")]
        counted[node] = {
            "ok": sum(1 for line in lines if line == "ok"),
            "fail": len(failed),
            "restarts": restarts,
            "failed_at": failed,
            "longest_burst_seconds": longest_burst(failed),
        }
    if not counted:
        raise LabError(f"no askers of {name} found")
    return counted


def longest_burst(failed_at, gap=BURST_GAP):
    """How long the longest run of failures lasted (seconds from its first failure to its
    last), failures less than ``gap`` seconds apart counting as one run; 0 for none."""
    longest, start, last = 0, None, None
    for moment in sorted(failed_at):
        if last is None or moment - last >= gap:
            start = moment
        last = moment
        longest = max(longest, last - start)
    return longest


def stop(lab, name, namespace="default"):
    workloads.delete(
        lab,
        f"deployment/{name}",
        f"service/{name}",
        f"poddisruptionbudget/{name}",
        f"daemonset/{name}-askers",
        namespace=namespace,
    )
