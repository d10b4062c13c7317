"""
State for Calico's BGP resources (see ``_modules/kubesalt_calico.py``).

.. code-block:: yaml

    kubesalt-calico-bgp-configured:
      kubesalt_calico.configured:
        - name: default
"""

import kubesalt_core.loader

__virtual_aliases__ = ("calico_bgp",)  # before 0.2 (README, "Module names")


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_calico.stream")


def configured(name, wait=180):
    """
    The BGPConfiguration, BGPPeers, node BGP addresses and IPPools are applied, the same
    way as the cluster objects (``kubesalt_manifest.applied``): ``kubectl diff --server-side``
    decides, test=True shows the diff, then ``kubectl apply --server-side``. Without
    kubectl (the lab) the state says so and changes nothing.
    """
    return __states__["kubesalt_manifest.applied"](
        name, wait=wait, source="kubesalt_calico.stream", what="Calico BGP resources"
    )
