"""
State for the cluster objects kubesalt owns (see ``_modules/kubesalt_manifest.py``).

.. code-block:: yaml

    kubesalt-cluster-objects-applied:
      kubesalt_manifest.applied:
        - name: kubesalt
"""

from salt.exceptions import CommandExecutionError

import kubesalt_core.loader

__virtual_aliases__ = ("k8s_objects",)  # before 0.2 (README, "Module names")


def __virtual__():
    return kubesalt_core.loader.state_virtual(
        "kubesalt_manifest", __salt__, "kubesalt_manifest.diff"
    )


def applied(name, wait=180, source="kubesalt_manifest.manifests", what="cluster objects"):
    """
    kubesalt's cluster objects (and Calico's CRDs) are applied with server-side apply.

    Namespaces go first (an object in a namespace that does not exist yet cannot be
    diffed: the server-side dry run answers 404), then the rest. Nothing is applied when
    ``kubectl diff --server-side`` finds no difference; test=True returns the diff without
    applying. Where the ``kubernetes`` artifact is unavailable (the lab) there is no
    kubectl: the state says so and changes nothing.

    wait
        Seconds to wait for the apiserver to answer (a master's first run starts it).
        Default: 180.
    source
        The execution function that gives the YAML stream, called with
        ``part="namespaces"`` and ``part="rest"``. Default: ``kubesalt_manifest.manifests``;
        ``kubesalt_calico.configured`` passes ``kubesalt_calico.stream``.
    what
        How comments name the objects.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    if not __salt__["kubesalt_manifest.kubectl_available"]():
        ret["comment"] = (
            f"{what} not applied: artifact kubernetes not available (no kubectl); "
            f"see {source} for what would be applied"
        )
        return ret
    try:
        if __opts__["test"] and not __salt__["kubesalt_manifest.ready"]():
            # A first run: kubectl or the apiserver come with this very run.
            streams = "\n---\n".join(
                [__salt__[source](part="namespaces"), __salt__[source](part="rest")]
            )
            ret["result"] = None
            ret["changes"] = {"objects": __salt__["kubesalt_manifest.describe"](streams)}
            ret["comment"] = (
                f"would apply {what} (server-side) once kubectl and the apiserver are up: "
                "this run installs or starts them, so there is nothing to diff against yet"
            )
            return ret
        namespaces = __salt__[source](part="namespaces")
        new_namespaces = (
            __salt__["kubesalt_manifest.diff"](wait=wait, stream=namespaces) if namespaces else ""
        )
        if new_namespaces and __opts__["test"]:
            ret["result"] = None
            ret["changes"] = {"diff": new_namespaces}
            ret["comment"] = (
                f"would create namespaces, then apply the {what} in them "
                "(server-side; they can be diffed once their namespaces exist)"
            )
            return ret
        applied_lines = []
        if new_namespaces:
            applied_lines += __salt__["kubesalt_manifest.apply"](stream=namespaces)
        rest = __salt__[source](part="rest")
        difference = __salt__["kubesalt_manifest.diff"](wait=wait, stream=rest)
        if not difference and not applied_lines:
            ret["comment"] = f"{what} are applied"
            return ret
        ret["changes"] = {"diff": new_namespaces + difference}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"would apply {what} (server-side)"
            return ret
        if difference:
            applied_lines += __salt__["kubesalt_manifest.apply"](stream=rest)
        ret["changes"]["applied"] = applied_lines
        ret["comment"] = f"applied {what} (server-side)"
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = str(err)
    return ret
