"""
kubesalt_upgrade: what ``kubesalt.orch.upgrade`` will do, asked of the cluster.

:func:`plan` runs when the orchestration is rendered (also with ``test=True``): it asks
every node in pillar for the Kubernetes version its binaries report, asks a master for
the Nodes and etcd's health, checks the pre-flight and the version skew policy, and
returns the plan node by node. The orchestration renders its steps from it, so a rerun
after a stop goes on where the cluster is.

CLI Example:

.. code-block:: bash

    salt-run kubesalt_upgrade.plan master=master-1
    salt-run state.orchestrate kubesalt.orch.upgrade test=True
"""

import logging

import salt.client
from salt.exceptions import SaltInvocationError

import kubesalt_core.pillar
import kubesalt_core.upgrade

log = logging.getLogger(__name__)

__virtualname__ = "kubesalt_upgrade"

TIMEOUT = 60


def __virtual__():
    return __virtualname__


def _one(client, minion, function, **kwarg):
    """``function`` on ``minion``: its answer, or raise with what went wrong."""
    ret = client.cmd(minion, function, kwarg=kwarg, timeout=TIMEOUT, full_return=True)
    answer = ret.get(minion)
    if not isinstance(answer, dict) or answer.get("retcode", 0) != 0:
        shown = answer.get("ret") if isinstance(answer, dict) else "no answer"
        raise RuntimeError(f"{function} on {minion}: {shown}")
    return answer["ret"]


def plan(master):
    """
    The upgrade to pillar's ``versions:kubernetes``, as the orchestration will run it:
    ``{target, problems, steps, apiservers, masters, batches, uncordon, empty, roles}``.
    Any problem (a pre-flight or skew finding, an invalid pillar) means the orchestration
    changes nothing; ``empty``: every node runs the target already.

    master
        The master to ask (kubectl with the admin kubeconfig, etcd's health).

    CLI Example:

    .. code-block:: bash

        salt-run kubesalt_upgrade.plan master=master-1
    """
    if not master:
        raise SaltInvocationError("Invalid value for master: expected a master's minion id")
    with salt.client.get_local_client(mopts=__opts__) as client:
        return _plan(client, master)


def _plan(client, master):
    try:
        report = _one(client, master, "kubesalt.validate")
        if not report["valid"]:
            return _refused(["pillar 'kubesalt' is invalid: " + "; ".join(report["errors"])])
        config = _one(client, master, "kubesalt.config")
    except RuntimeError as err:
        return _refused([str(err)])
    target = str(config["versions"]["kubernetes"])
    roles = {node: kubesalt_core.pillar.roles_of(config, node) for node in sorted(config["nodes"])}
    answers = client.cmd(
        sorted(roles), "kubesalt_upgrade.installed", tgt_type="list", timeout=TIMEOUT
    )
    versions = {n: v for n, v in answers.items() if isinstance(v, dict)}
    try:
        cluster = _one(client, master, "kubesalt_node.cluster_nodes")
        etcd = _one(client, master, "kubesalt_etcd.health")
    except RuntimeError as err:
        return _refused([str(err)], target)
    problems = kubesalt_core.upgrade.preflight(roles, versions, cluster, etcd)
    kubelets = {n: s["kubelet"] for n, s in cluster.items()}
    problems += kubesalt_core.upgrade.skew_problems(target, versions, kubelets)
    nodes = [
        kubesalt_core.upgrade.Node(
            node,
            roles[node],
            versions.get(node) or {},
            unschedulable=(cluster.get(node) or {}).get("unschedulable", False),
            cordoned_by_upgrade=(cluster.get(node) or {}).get("cordoned_by_upgrade", False),
        )
        for node in roles
    ]
    decided = kubesalt_core.upgrade.plan(target, nodes, config["upgrade"]["worker_batch"])
    return {
        "target": target,
        "problems": problems,
        "steps": decided.steps(),
        "apiservers": decided.apiservers,
        "masters": decided.masters,
        "batches": decided.batches,
        "uncordon": decided.uncordon,
        "empty": decided.empty,
        "roles": roles,
        "settings": config["upgrade"],
    }


def _refused(problems, target=None):
    return {
        "target": target,
        "problems": problems,
        "steps": [],
        "apiservers": [],
        "masters": [],
        "batches": [],
        "uncordon": [],
        "empty": False,
        "roles": {},
        "settings": {},
    }
