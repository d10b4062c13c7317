"""
kubesalt_node: a master's operations on the cluster's Nodes, through kubectl with the admin
kubeconfig: what the upgrade and the removal of a worker run.

:func:`cluster_nodes` (each Node's readiness, kubelet version, cordon); :func:`cordon`,
:func:`drain` (the Eviction API: PodDisruptionBudgets honoured) and :func:`uncordon`, which
lift only a cordon kubesalt made (the annotation ``kubesalt.io/upgrade-cordoned``);
:func:`ready` (a Node Ready on a kubelet version); :func:`apiserver_ready` (this master's
own apiserver on a version); :func:`evacuate` and :func:`delete` for a worker that leaves.
The decisions are in ``_utils/kubesalt_core/upgrade.py`` and ``node_removal.py``.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_node.cluster_nodes
    salt master-1 kubesalt_node.drain worker-1 timeout=300
    salt master-1 kubesalt_node.uncordon worker-1
"""

import json
import subprocess
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.node_removal
import kubesalt_core.pillar
import kubesalt_core.pki
import kubesalt_core.upgrade

KUBECTL_TIMEOUT = 60
POLL_SECONDS = 3


def _config():
    return __salt__["kubesalt.config"]()


def _run(argv, timeout):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err


def _kubectl(*args, timeout=KUBECTL_TIMEOUT):
    command = kubesalt_core.pki.admin_kubectl(_config())
    if command is None:
        raise CommandExecutionError(
            "kubectl is not available here: pillar gives no artifacts:kubernetes, or this "
            "is not a master"
        )
    return _run([*command, *args], timeout)


def _checked(proc, what):
    if proc.returncode != 0:
        raise CommandExecutionError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout


def _exists(node):
    return _kubectl("get", "node", node, "-o", "name").returncode == 0


def _node_object(node):
    return json.loads(_checked(_kubectl("get", "node", node, "-o", "json"), f"get node {node}"))


def _summary(item):
    status = item.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    annotations = (item.get("metadata") or {}).get("annotations") or {}
    kubelet = ((status.get("nodeInfo") or {}).get("kubeletVersion") or "").lstrip("v")
    return {
        "ready": ready.get("status") == "True",
        "unschedulable": bool((item.get("spec") or {}).get("unschedulable")),
        "kubelet": kubelet or None,
        "cordoned_by_upgrade": kubesalt_core.upgrade.CORDON_ANNOTATION in annotations,
    }


def cluster_nodes():
    """
    Every Node as the apiserver has it: ``{name: {ready, unschedulable, kubelet,
    cordoned_by_upgrade}}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.cluster_nodes
    """
    items = json.loads(_checked(_kubectl("get", "nodes", "-o", "json"), "get nodes"))["items"]
    return {item["metadata"]["name"]: _summary(item) for item in items}


def _valid_node(node):
    if not node or not isinstance(node, str):
        raise SaltInvocationError(f"Invalid value for node: {node!r}; expected a Node name")


def _seconds(value, name):
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = 0
    if seconds <= 0:
        raise SaltInvocationError(f"Invalid value for {name}: {value!r}; expected seconds > 0")
    return seconds


def _upgrade_setting(name):
    return _config()["upgrade"][name]


def cordon(node):
    """
    Cordon ``node`` for the upgrade: marked with the annotation
    ``kubesalt.io/upgrade-cordoned`` so that :func:`uncordon` (and a rerun) lift only a
    cordon the upgrade made. A node cordoned before (by an operator) is left as it is.
    Returns True when this call cordoned it.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.cordon worker-1
    """
    _valid_node(node)
    state = _summary(_node_object(node))
    if state["unschedulable"]:
        return False
    mark = f"{kubesalt_core.upgrade.CORDON_ANNOTATION}=true"
    _checked(_kubectl("annotate", "--overwrite", "node", node, mark), f"annotate {node}")
    _checked(_kubectl("cordon", node), f"cordon {node}")
    return True


def uncordon(node):
    """
    Lift the upgrade's cordon of ``node`` (and its annotation); a node an operator
    cordoned stays cordoned. Returns True when the node was uncordoned.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.uncordon worker-1
    """
    _valid_node(node)
    if not _summary(_node_object(node))["cordoned_by_upgrade"]:
        return False
    _checked(_kubectl("uncordon", node), f"uncordon {node}")
    unmark = f"{kubesalt_core.upgrade.CORDON_ANNOTATION}-"
    _checked(_kubectl("annotate", "node", node, unmark), f"annotate {node}")
    return True


def _blocking_budgets():
    """PodDisruptionBudgets that allow no disruption now: ``[(namespace, name)]``."""
    proc = _kubectl("get", "poddisruptionbudgets", "--all-namespaces", "-o", "json")
    if proc.returncode != 0:
        return []
    return [
        (item["metadata"]["namespace"], item["metadata"]["name"])
        for item in json.loads(proc.stdout)["items"]
        if (item.get("status") or {}).get("disruptionsAllowed", 0) == 0
    ]


def drain(node, timeout=None):
    """
    Cordon ``node`` and evict its pods through the Eviction API (``kubectl drain``:
    PodDisruptionBudgets are honoured, an eviction they refuse with 429 is retried),
    DaemonSet pods left in place, emptyDir data deleted with its pod. A pod no controller
    owns is not deleted: the drain fails on it. A Node that does not exist (any more) is
    left as it is. When the drain does not finish within
    ``timeout`` seconds, the node is uncordoned and the error says which pods stayed and
    which budgets allow no disruption.

    timeout
        Seconds; default pillar ``upgrade:drain_timeout``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.drain worker-1 timeout=300
    """
    _valid_node(node)
    seconds = _seconds(timeout or _upgrade_setting("drain_timeout"), "timeout")
    if not _exists(node):
        return {"node": node, "drained": False, "absent": True}
    cordon(node)
    proc = _kubectl(
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        f"--timeout={seconds}s",
        timeout=seconds + 60,
    )
    if proc.returncode == 0:
        return {"node": node, "drained": True, "evicted": _evicted(proc.stdout)}
    output = proc.stdout + proc.stderr
    budgets = _blocking_budgets()
    uncordon(node)
    raise CommandExecutionError(kubesalt_core.upgrade.drain_failure(node, output, budgets))


def _evicted(output):
    return sorted(
        line.split("pod/", 1)[1].split()[0]
        for line in output.splitlines()
        if line.startswith("pod/") and "evicted" in line
    )


def ready(node, version=None, timeout=None):
    """
    Wait until Node ``node`` is Ready with its kubelet on ``version``.

    version
        Default: pillar ``versions:kubernetes``.
    timeout
        Seconds; default pillar ``upgrade:ready_timeout``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.ready worker-1
    """
    _valid_node(node)
    version = str(version or _config()["versions"]["kubernetes"])
    seconds = _seconds(timeout or _upgrade_setting("ready_timeout"), "timeout")
    deadline = time.monotonic() + seconds
    state = {}
    while True:
        try:
            state = _summary(_node_object(node))
        except CommandExecutionError as err:
            state = {"error": str(err)}
        if state.get("ready") and state.get("kubelet") == version:
            return {"node": node, "ready": True, "kubelet": version}
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{node} is not Ready on kubelet {version} after {seconds}s: {state}"
            )
        time.sleep(POLL_SECONDS)


def apiserver_ready(version=None, timeout=None):
    """
    Wait until this master's apiserver answers ``/readyz`` and reports ``version`` at
    ``/version``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.apiserver_ready
    """
    config = _config()
    version = str(version or config["versions"]["kubernetes"])
    seconds = _seconds(timeout or _upgrade_setting("ready_timeout"), "timeout")
    ip = kubesalt_core.pillar.node_of(config, __opts__["id"])["ip"]
    server = f"--server=https://{ip}:{kubesalt_core.pillar.APISERVER_PORT}"
    deadline = time.monotonic() + seconds
    seen = ""
    while True:
        readyz = _kubectl(server, "get", "--raw", "/readyz", timeout=15)
        answer = _kubectl(server, "get", "--raw", "/version", timeout=15)
        if readyz.returncode == 0 and answer.returncode == 0:
            reported = json.loads(answer.stdout).get("gitVersion", "").lstrip("v")
            if reported == version:
                return {"ready": True, "version": version}
            seen = f"/version says {reported}"
        else:
            seen = (readyz.stderr or answer.stderr).strip()[-300:]
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"the apiserver on {__opts__['id']} is not ready on {version} after "
                f"{seconds}s: {seen}"
            )
        time.sleep(POLL_SECONDS)


# --- a worker leaving -------------------------------------------------------------------


def _pods_on(node):
    argv = ("get", "pods", "--all-namespaces", "--field-selector", f"spec.nodeName={node}")
    found = json.loads(_checked(_kubectl(*argv, "-o", "json"), f"list the pods on {node}"))
    return sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in found["items"])


def _leaving(node, timeout):
    """The seconds a leaving ``node`` is given (default pillar ``upgrade:drain_timeout``), or
    None when it has no Node any more."""
    _valid_node(node)
    seconds = _seconds(timeout or _upgrade_setting("drain_timeout"), "timeout")
    return seconds if _exists(node) else None


def _taint_and_wait(node, taint, seconds):
    """Put ``taint`` on ``node``; the pods still on it once none is left or at the deadline."""
    _checked(_kubectl("taint", "nodes", node, taint, "--overwrite"), f"taint {node}")
    deadline = time.monotonic() + seconds
    while (left := _pods_on(node)) and time.monotonic() <= deadline:
        time.sleep(POLL_SECONDS)
    return left


def evacuate(node, timeout=None):
    """
    Empty ``node`` of the pods a drain leaves (DaemonSets'): it gets the taint
    ``kubesalt.io/removed=true:NoExecute``, then this waits until no pod is left on it
    (their kubelet ends them and gives their addresses back). Returns the pods still
    there at ``timeout`` (those that tolerate every taint), which leave with the Node.

    timeout
        Seconds; default pillar ``upgrade:drain_timeout``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.evacuate worker-3
    """
    seconds = _leaving(node, timeout)
    if seconds is None:
        return {"node": node, "left": [], "absent": True}
    left = _taint_and_wait(node, kubesalt_core.node_removal.EVACUATE_TAINT, seconds)
    return {"node": node, "left": left}


def fence(node, timeout=None):
    """
    Empty ``node``, whose host is down for good, of its pods without its kubelet: refused
    while its Node is Ready; otherwise it is cordoned and gets the taint
    ``node.kubernetes.io/out-of-service=nodeshutdown:NoExecute`` (Kubernetes'
    non-graceful node shutdown: the pods are evicted, then force-deleted by the pod
    garbage collector, and their controllers make them again elsewhere), and this waits
    until no pod is left on it. Raises naming the pods still there at ``timeout``.

    timeout
        Seconds; default pillar ``upgrade:drain_timeout``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.fence worker-3
    """
    seconds = _leaving(node, timeout)
    if seconds is None:
        return {"node": node, "left": [], "absent": True}
    if _summary(_node_object(node))["ready"]:
        raise CommandExecutionError(
            f"{node} is Ready: its kubelet runs, so it is not down; drain it instead"
        )
    _checked(_kubectl("cordon", node), f"cordon {node}")
    left = _taint_and_wait(node, kubesalt_core.node_removal.OUT_OF_SERVICE_TAINT, seconds)
    if left:
        raise CommandExecutionError(
            f"{len(left)} pods are still on {node} after {seconds} s: {', '.join(left)}"
        )
    return {"node": node, "left": []}


def delete(node):
    """
    Delete Node ``node`` (its pods are then deleted by the cluster). Returns True when it
    existed.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.delete worker-3
    """
    _valid_node(node)
    proc = _kubectl("delete", "node", node, "--ignore-not-found", "--wait=true", timeout=120)
    return bool(_checked(proc, f"delete node {node}").strip())


def _ipam(node):
    lists = {}
    for kind in ("blockaffinities.crd.projectcalico.org", "ipamblocks.crd.projectcalico.org"):
        lists[kind] = json.loads(_checked(_kubectl("get", kind, "-o", "json"), f"list {kind}"))
    return kubesalt_core.node_removal.ipam_of(
        node,
        lists["blockaffinities.crd.projectcalico.org"]["items"],
        lists["ipamblocks.crd.projectcalico.org"]["items"],
    )


def ipam(node):
    """
    Calico's IPAM blocks of ``node``: ``[{cidr, affinity, block, used}]``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.ipam worker-1
    """
    _valid_node(node)
    return _ipam(node)


def release_ipam(node, timeout=60):
    """
    Release the Calico IP blocks and block affinities of ``node``, whose Node is gone:
    each block with no address in use is deleted with its affinity. A block still holding
    addresses (of pods that never gave theirs back) is waited for up to ``timeout``
    seconds, then named in the error (calico-kube-controllers releases leaked addresses
    later). Returns ``{"released": [cidrs]}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_node.release_ipam worker-3
    """
    _valid_node(node)
    seconds = _seconds(timeout, "timeout")
    if _exists(node):
        raise CommandExecutionError(
            f"Node {node} still exists: delete it first (kubesalt_node.delete), or its "
            "kubelet gets addresses from these blocks again"
        )
    deadline = time.monotonic() + seconds
    while True:
        plan = kubesalt_core.node_removal.release_plan(_ipam(node))
        if not plan["busy"] or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    for block in plan["blocks"]:
        _checked(
            _kubectl("delete", "ipamblocks.crd.projectcalico.org", block, "--ignore-not-found"),
            f"delete block {block}",
        )
    for affinity in plan["affinities"]:
        _checked(
            _kubectl(
                "delete", "blockaffinities.crd.projectcalico.org", affinity, "--ignore-not-found"
            ),
            f"delete block affinity {affinity}",
        )
    released = plan["cidrs"]
    if plan["busy"]:
        busy = ", ".join(f"{cidr} ({used} in use)" for cidr, used in plan["busy"].items())
        raise CommandExecutionError(
            f"{node}: released {len(released)} blocks; still holding addresses after "
            f"{seconds}s: {busy}"
        )
    return {"node": node, "released": released}
