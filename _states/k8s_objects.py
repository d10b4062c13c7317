"""
State for the cluster objects kubesalt owns (see ``_modules/k8s_objects.py``).

.. code-block:: yaml

    kubesalt-cluster-objects-applied:
      k8s_objects.applied:
        - name: kubesalt
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "k8s_objects"


def __virtual__():
    if "k8s_objects.diff" in __salt__:
        return __virtualname__
    return (False, "k8s_objects: the k8s_objects execution module is not loaded")


def applied(name, wait=180):
    """
    kubesalt's cluster objects (and Calico's CRDs) are applied with server-side apply.

    Nothing is applied when ``kubectl diff --server-side`` finds no difference; test=True
    returns the diff without applying. Where the ``kubernetes`` artifact is unavailable
    (the lab) there is no kubectl: the state says so and changes nothing.

    wait
        Seconds to wait for the apiserver to answer (a master's first run starts it).
        Default: 180.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    if not __salt__["k8s_objects.kubectl_available"]():
        ret["comment"] = (
            "cluster objects not applied: artifact kubernetes not available (no kubectl); "
            "see k8s_objects.manifests for what would be applied"
        )
        return ret
    try:
        difference = __salt__["k8s_objects.diff"](wait=wait)
        if not difference:
            ret["comment"] = "cluster objects are applied"
            return ret
        ret["changes"] = {"diff": difference}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "would apply cluster objects (server-side)"
            return ret
        ret["changes"]["applied"] = __salt__["k8s_objects.apply"]()
        ret["comment"] = "applied cluster objects (server-side)"
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = str(err)
    return ret
