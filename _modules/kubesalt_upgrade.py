"""
kubesalt_upgrade: Kubernetes version changes, node by node, as the upgrade orchestration
runs them.

A highstate refuses to change a node's Kubernetes version (``kubesalt_upgrade.version_held``
runs first in every highstate, from ``kubesalt.validate``). The version changes only
through ``salt-run state.orchestrate kubesalt.orch.upgrade``, which passes its
authorization as the inline pillar ``kubesalt_upgrade`` (``{version, components}``) with
each step. The decisions are in ``_utils/kubesalt_core/upgrade.py``; this module asks the
node and the cluster.

On any node: :func:`installed` (what its binaries report), :func:`held`, :func:`scope`.
On a master (kubectl with the admin kubeconfig): :func:`cluster_nodes`, :func:`drain`,
:func:`uncordon`, :func:`node_upgraded`, and on the master itself
:func:`apiserver_upgraded`.

CLI Example:

.. code-block:: bash

    salt '*' kubesalt_upgrade.installed
    salt master-1 kubesalt_upgrade.cluster_nodes
    salt master-1 kubesalt_upgrade.drain worker-1 timeout=300
"""

import json
import os
import subprocess
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.artifact
import kubesalt_core.pillar
import kubesalt_core.pki
import kubesalt_core.upgrade

VERSION_TIMEOUT = 30
KUBECTL_TIMEOUT = 60
POLL_SECONDS = 3


def _config():
    return __salt__["kubesalt.config"]()


def _authorization():
    return __pillar__.get(kubesalt_core.upgrade.AUTHORIZATION_KEY)


def _run(argv, timeout):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err


def installed():
    """
    The Kubernetes version each of this node's Kubernetes binaries reports
    (``{binary: "1.37.2"}``; None for one not installed or that names no version).

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_upgrade.installed
    """
    config = _config()
    found = {}
    for binary in __salt__["kubesalt_artifact.needed"]():
        if binary not in kubesalt_core.upgrade.KUBERNETES_BINARIES:
            continue
        path = kubesalt_core.artifact.executable(config, "kubernetes", binary)
        if not os.access(path, os.X_OK):
            found[binary] = None
            continue
        proc = _run(kubesalt_core.upgrade.version_argv(path, binary), VERSION_TIMEOUT)
        found[binary] = kubesalt_core.upgrade.reported_version(proc.stdout + proc.stderr)
    return found


def held():
    """
    Why a state run here must not change the Kubernetes version: a list of messages,
    empty when it may go on (nothing installed yet, the versions match pillar, or the
    upgrade orchestration authorized this version).

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_upgrade.held
    """
    config = _config()
    if __opts__["id"] not in config["nodes"]:
        return []
    target = str(config["versions"]["kubernetes"])
    return kubesalt_core.upgrade.held(__opts__["id"], installed(), target, _authorization())


def scope():
    """
    The units the orchestration's current step may touch on this node (its inline pillar
    ``kubesalt_upgrade:components``), or None for every unit of the node's roles.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_upgrade.scope
    """
    return kubesalt_core.upgrade.scope(_authorization())


# --- on a master: the cluster's view -------------------------------------------------------


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

        salt master-1 kubesalt_upgrade.cluster_nodes
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

        salt master-1 kubesalt_upgrade.cordon worker-1
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

        salt master-1 kubesalt_upgrade.uncordon worker-1
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
    owns is not deleted: the drain fails on it. When the drain does not finish within
    ``timeout`` seconds, the node is uncordoned and the error says which pods stayed and
    which budgets allow no disruption.

    timeout
        Seconds; default pillar ``upgrade:drain_timeout``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_upgrade.drain worker-1 timeout=300
    """
    _valid_node(node)
    seconds = _seconds(timeout or _upgrade_setting("drain_timeout"), "timeout")
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


def node_upgraded(node, version=None, timeout=None):
    """
    Wait until Node ``node`` is Ready with its kubelet on ``version``.

    version
        Default: pillar ``versions:kubernetes``.
    timeout
        Seconds; default pillar ``upgrade:ready_timeout``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_upgrade.node_upgraded worker-1
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


def apiserver_upgraded(version=None, timeout=None):
    """
    Wait until this master's apiserver answers ``/readyz`` and reports ``version`` at
    ``/version``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_upgrade.apiserver_upgraded
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
