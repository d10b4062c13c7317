"""
State for Calico's BGP resources (see ``_modules/kubesalt_calico.py``).

.. code-block:: yaml

    kubesalt-calico-bgp-configured:
      kubesalt_calico.configured:
        - name: default
"""

__virtualname__ = "kubesalt_calico"
# The name before 0.2, kept for one release (README, "Module names").
__virtual_aliases__ = ("calico_bgp",)


def __virtual__():
    if "kubesalt_calico.stream" in __salt__:
        return __virtualname__
    return (False, "kubesalt_calico: the kubesalt_calico execution module is not loaded")


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
