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
        # Namespaces first: an object in a namespace that does not exist yet cannot be
        # diffed (the server-side dry run answers 404).
        namespaces = __salt__["k8s_objects.manifests"](part="namespaces")
        new_namespaces = (
            __salt__["k8s_objects.diff"](wait=wait, stream=namespaces) if namespaces else ""
        )
        if new_namespaces and __opts__["test"]:
            ret["result"] = None
            ret["changes"] = {"diff": new_namespaces}
            ret["comment"] = (
                "would create namespaces, then apply the cluster objects in them "
                "(server-side; they can be diffed once their namespaces exist)"
            )
            return ret
        applied = []
        if new_namespaces:
            applied += __salt__["k8s_objects.apply"](stream=namespaces)
        rest = __salt__["k8s_objects.manifests"](part="rest")
        difference = __salt__["k8s_objects.diff"](wait=wait, stream=rest)
        if not difference and not applied:
            ret["comment"] = "cluster objects are applied"
            return ret
        ret["changes"] = {"diff": new_namespaces + difference}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "would apply cluster objects (server-side)"
            return ret
        if difference:
            applied += __salt__["k8s_objects.apply"](stream=rest)
        ret["changes"]["applied"] = applied
        ret["comment"] = "applied cluster objects (server-side)"
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = str(err)
    return ret
