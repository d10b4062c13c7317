"""The pillar of day-2 operations: etcd's snapshots (``etcd:snapshots``), the Kubernetes
upgrade's settings (``upgrade``), and the checks that compare settings with ``nodes`` or
with ``versions:kubernetes`` (what an upgrade changes). :mod:`kubesalt_core.pillar_schema`
merges :data:`SCHEMA` into its own and adds :func:`problems`.

No Salt dunders and no I/O here.
"""

import kubesalt_core.pillar
from kubesalt_core import pillar_checks as check

ROOT = kubesalt_core.pillar.PILLAR_KEY

_SECONDS = check.int_range(1, 86400, "seconds")

SCHEMA = {
    "etcd": check.mapping(
        {
            "snapshots": check.mapping(
                {
                    "interval_minutes": check.int_range(0, 10080, "minutes (0: none)"),
                    "keep": check.int_range(1, 1000, "a number of snapshots"),
                }
            )
        }
    ),
    "upgrade": check.mapping(
        {
            "worker_batch": check.int_range(1, 1000, "a number of workers"),
            "drain_timeout": _SECONDS,
            "ready_timeout": _SECONDS,
        }
    ),
}

# Kubernetes deprecated kube-proxy's IPVS mode in 1.35 (KEP-5495); nftables replaces it.
IPVS_DEPRECATED_SINCE = (1, 35)


def problems(parsed):
    """The checks across keys: the worker batch against the workers, kube-proxy's mode
    against the Kubernetes version."""
    return _check_worker_batch(parsed) + _check_kube_proxy_mode(parsed)


def _check_worker_batch(parsed):
    batch = (parsed.get("upgrade") or {}).get("worker_batch")
    nodes = parsed.get("nodes")
    if not isinstance(batch, int) or not isinstance(nodes, dict):
        return []
    workers = sum(
        1
        for node in nodes.values()
        if isinstance(node, dict) and "worker" in (node.get("roles") or [])
    )
    if workers and batch > workers:
        return [
            check.Problem(
                f"{ROOT}:upgrade:worker_batch",
                f"{batch} is more than the {workers} workers in nodes; expected 1 to {workers}",
            )
        ]
    return []


def _check_kube_proxy_mode(parsed):
    mode = (parsed.get("kube_proxy") or {}).get("mode")
    version = (parsed.get("versions") or {}).get("kubernetes")
    if mode != "ipvs" or not version:
        return []
    minor = tuple(int(part) for part in str(version).lstrip("v").split(".")[:2])
    if minor < IPVS_DEPRECATED_SINCE:
        return []
    return [
        check.Problem(
            f"{ROOT}:kube_proxy:mode",
            f"ipvs is deprecated since Kubernetes 1.35 (KEP-5495) and versions:kubernetes is "
            f"{version}; nftables is its successor (kernel 5.13 or newer): "
            "kube_proxy:mode: nftables",
            check.WARNING,
        )
    ]
