"""
kubesalt_calico: Calico's BGP resources and the routers' BIRD config, from pillar.

What is built (``_utils/kubesalt_core/calico.py``): the BGPConfiguration ``default`` (explicit
``asNumber``, node-to-node mesh off, service IPs when asked), one BGPPeer per router and the
IPPools (no encapsulation). They are applied by one master with
``kubectl apply --server-side`` through ``kubesalt_manifest``; the routers render their
``bird.conf`` from the same pillar.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_calico.resources
    salt router-1 kubesalt_calico.bird_config
"""

import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.calico

__virtual_aliases__ = ("calico_bgp",)  # before 0.2 (README, "Module names")


def resources():
    """
    The BGP resources for the cluster, as a list of objects.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_calico.resources
    """
    return kubesalt_core.calico.resources(__salt__["kubesalt.config"]())


def stream(part="all"):
    """
    :func:`resources` as the YAML stream kubectl is given. ``part`` as for
    ``kubesalt_manifest.manifests``: the BGP resources hold no Namespace, so ``namespaces`` is
    empty and ``rest`` is everything.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_calico.stream
    """
    if part not in ("all", "namespaces", "rest"):
        raise SaltInvocationError(f"Invalid value {part!r} for part. Valid: all, namespaces, rest")
    return "" if part == "namespaces" else yaml.safe_dump_all(resources(), sort_keys=True)


def bird_config(router=None):
    """
    The ``bird.conf`` of router ``router`` (default: this minion).

    CLI Example:

    .. code-block:: bash

        salt router-1 kubesalt_calico.bird_config
    """
    config = __salt__["kubesalt.config"]()
    router = router or __opts__["id"]
    node = config["nodes"].get(router)
    if not node or "router" not in node["roles"]:
        raise CommandExecutionError(f"{router} is not a router in pillar kubesalt:nodes")
    return kubesalt_core.calico.bird_config(config, router)
