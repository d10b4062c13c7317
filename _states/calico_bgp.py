"""
State for Calico's BGP resources (see ``_modules/calico_bgp.py``).

.. code-block:: yaml

    kubesalt-calico-bgp-configured:
      calico_bgp.configured:
        - name: default
"""

__virtualname__ = "calico_bgp"


def __virtual__():
    if "calico_bgp.stream" in __salt__:
        return __virtualname__
    return (False, "calico_bgp: the calico_bgp execution module is not loaded")


def configured(name, wait=180):
    """
    The BGPConfiguration, BGPPeers, node BGP addresses and IPPools are applied, the same
    way as the cluster objects (``k8s_objects.applied``): ``kubectl diff --server-side``
    decides, test=True shows the diff, then ``kubectl apply --server-side``. Without
    kubectl (the lab) the state says so and changes nothing.
    """
    return __states__["k8s_objects.applied"](
        name, wait=wait, source="calico_bgp.stream", what="Calico BGP resources"
    )
