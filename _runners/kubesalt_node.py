"""
kubesalt_node: decisions about Nodes made on the salt-master, for the orchestrations that
remove them (the operations on a Node run on a master: the ``kubesalt_node`` execution
module).

CLI Example:

.. code-block:: bash

    salt-run kubesalt_node.removal_refused target=worker-3 nodes='{}'
    salt-run kubesalt_node.removal_plan target=worker-3 master=master-1
"""

import salt.client

import kubesalt_core.node_removal

__virtualname__ = "kubesalt_node"


def __virtual__():
    return __virtualname__


def removal_refused(target=None, nodes=None):
    """
    Why ``kubesalt.orch.remove_worker`` refuses to remove ``target`` (a message), or None.
    ``nodes`` is pillar ``kubesalt:nodes`` as the orchestration renders it.

    CLI Example:

    .. code-block:: bash

        salt-run kubesalt_node.removal_refused target=worker-3 nodes='{}'
    """
    return kubesalt_core.node_removal.refusal(nodes or {}, target)


def removal_plan(target=None, nodes=None, master=None, force=False):
    """
    Whether ``kubesalt.orch.remove_worker`` removes ``target``, and how:
    ``{"refusal": message or None, "dead": bool}``. ``dead``: its minion does not answer
    (asked now), so its pods go without its kubelet and nothing is stopped on it; refused
    unless ``force``, and while its Node is Ready (asked of ``master``).

    CLI Example:

    .. code-block:: bash

        salt-run kubesalt_node.removal_plan target=worker-3 master=master-1 nodes='{}'
    """
    refused = kubesalt_core.node_removal.refusal(nodes or {}, target)
    if refused:
        return {"refusal": refused, "dead": False}
    with salt.client.get_local_client(mopts=__opts__) as client:
        if client.cmd(target, "test.ping", timeout=10).get(target) is True:
            return {"refusal": None, "dead": False}
        answer = client.cmd(master, "kubesalt_node.cluster_nodes", timeout=60).get(master)
    if not isinstance(answer, dict):
        return {"refusal": f"{master} could not list the Nodes: {answer}", "dead": True}
    ready = (answer.get(target) or {}).get("ready") if target in answer else None
    return {
        "refusal": kubesalt_core.node_removal.dead_refusal(target, ready, bool(force)),
        "dead": True,
    }
