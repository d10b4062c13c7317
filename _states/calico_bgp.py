"""
State for Calico's BGP resources (see ``_modules/calico_bgp.py``).

.. code-block:: yaml

    kubesalt-calico-bgp-configured:
      calico_bgp.configured:
        - name: default
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "calico_bgp"


def __virtual__():
    if "calico_bgp.stream" in __salt__:
        return __virtualname__
    return (False, "calico_bgp: the calico_bgp execution module is not loaded")


def configured(name, wait=180):
    """
    The BGPConfiguration, BGPPeers, node BGP addresses and IPPools are applied.

    ``kubectl diff --server-side`` decides: no difference, no change; test=True returns the
    diff without applying; otherwise ``kubectl apply --server-side`` and the diff in
    ``changes``. Without kubectl (the lab) the state says so and changes nothing.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    if not __salt__["k8s_objects.kubectl_available"]():
        ret["comment"] = (
            "Calico BGP resources not applied: artifact kubernetes not available (no kubectl); "
            "see calico_bgp.resources for what would be applied"
        )
        return ret
    try:
        text = __salt__["calico_bgp.stream"]()
        difference = __salt__["k8s_objects.diff"](wait=wait, stream=text)
        if not difference:
            ret["comment"] = "Calico BGP resources are applied"
            return ret
        ret["changes"] = {"diff": difference}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "would apply Calico BGP resources (server-side)"
            return ret
        ret["changes"]["applied"] = __salt__["k8s_objects.apply"](stream=text)
        ret["comment"] = "applied Calico BGP resources (server-side)"
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = str(err)
    return ret
