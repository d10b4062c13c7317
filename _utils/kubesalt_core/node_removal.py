"""A worker leaving the cluster: whether it may, and what of Calico's IPAM it leaves behind.

``kubesalt.orch.remove_worker`` removes a worker that pillar no longer lists: drained,
emptied of the pods a drain leaves (a NoExecute taint), its kubelet stopped, its Node
deleted, its Calico blocks and block affinities released, and the routers' BIRD
rendered without it. A worker whose host is down for good (its minion does not answer,
its Node is NotReady) is removed only when forced: its pods are deleted without its
kubelet (:data:`OUT_OF_SERVICE_TAINT`), and nothing is stopped on it.

No Salt dunders and no I/O here.
"""

# The taint that empties a leaving node of the pods a drain leaves (DaemonSets').
EVACUATE_TAINT = "kubesalt.io/removed=true:NoExecute"
# Kubernetes' own mark of a node that is down for good (non-graceful node shutdown): its
# pods are deleted without their kubelet (the taint evicts them, and the pod garbage
# collector force-deletes the terminating pods of a NotReady node so marked).
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"

ORCHESTRATION = "kubesalt.orch.remove_worker"


def refusal(nodes, target):
    """Why ``target`` may not be removed (a message), or None.

    nodes
        pillar ``kubesalt:nodes``.
    """
    if not target:
        return (
            "pillar key target: expected the minion id of the worker to remove, e.g. "
            f'salt-run state.orchestrate {ORCHESTRATION} pillar=\'{{"target": "worker-3"}}\''
        )
    roles = ((nodes or {}).get(target) or {}).get("roles") or []
    if "master" in roles:
        return (
            f"{target} has the master role: remove it with kubesalt.orch.remove_master "
            "(its etcd member must leave first)"
        )
    if roles:
        return (
            f"{target} is still in pillar with roles {', '.join(roles)}: take it out of "
            "kubesalt:nodes first (otherwise a highstate would join it again), then run "
            f"{ORCHESTRATION} again"
        )
    return None


def dead_refusal(target, node_ready, force):
    """Why a worker whose minion does not answer may not be removed (a message), or None.

    node_ready
        its Node's Ready condition (None: there is no Node).
    """
    if node_ready:
        return (
            f"{target}'s minion does not answer but its Node is Ready (its kubelet runs): "
            "start its salt-minion and run again, so that its units are stopped too"
        )
    if not force:
        return (
            f"{target}'s minion does not answer and its Node is "
            f"{'gone' if node_ready is None else 'NotReady'}. If its host is down for good, "
            "run again with pillar force: true: its pods are deleted without its kubelet "
            "(the Node gets the node.kubernetes.io/out-of-service taint) and nothing on it "
            "can be stopped; should the host come back, its kubelet would register the Node "
            f"again, so retire its units first (salt {target} kubesalt_unit.retire worker)"
        )
    return None


def block_name(cidr):
    """Calico's IPAMBlock name for a block CIDR (``10.244.1.0/26`` -> ``10-244-1-0-26``)."""
    return cidr.replace(".", "-").replace(":", "-").replace("/", "-")


def ipam_of(node, affinities, blocks):
    """Calico's IPAM of ``node``, from the BlockAffinity and IPAMBlock objects: one entry
    per block it holds, ``{"cidr", "affinity" (name or None), "block" (name or None),
    "used" (addresses in use)}``, in CIDR order."""
    found = {}
    for affinity in affinities:
        spec = affinity.get("spec") or {}
        if spec.get("node") == node and spec.get("cidr"):
            found.setdefault(spec["cidr"], {})["affinity"] = affinity["metadata"]["name"]
    for block in blocks:
        spec = block.get("spec") or {}
        if spec.get("affinity") == f"host:{node}" and spec.get("cidr"):
            entry = found.setdefault(spec["cidr"], {})
            entry["block"] = block["metadata"]["name"]
            entry["used"] = sum(1 for a in spec.get("allocations") or [] if a is not None)
    return [
        {"cidr": cidr, "affinity": e.get("affinity"), "block": e.get("block"),
         "used": e.get("used", 0)}
        for cidr, e in sorted(found.items())
    ]  # fmt: skip


def release_plan(ipam):
    """From :func:`ipam_of`: what can go now (a block with no address in use, and its
    affinity) and what still holds addresses (``{cidr: used}``: pods that never got their
    address back; calico-kube-controllers releases those once it sees them leaked)."""
    free = [e for e in ipam if not e["used"]]
    return {
        "cidrs": [e["cidr"] for e in free],
        "blocks": [e["block"] for e in free if e["block"]],
        "affinities": [e["affinity"] for e in free if e["affinity"]],
        "busy": {e["cidr"]: e["used"] for e in ipam if e["used"]},
    }
