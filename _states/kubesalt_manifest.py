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
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_manifest.diff")


def applied(name, wait=180, source="kubesalt_manifest.manifests", what="cluster objects"):
    """
    kubesalt's cluster objects (and Calico's CRDs) are applied with server-side apply.

    Namespaces go first (an object in a namespace that does not exist yet cannot be
    diffed: the server-side dry run answers 404), then the rest. Nothing is applied when
    ``kubectl diff --server-side`` finds no difference; test=True returns the diff without
    applying (``kubesalt_manifest.plan``; a real run is ``kubesalt_manifest.converge``).
    Where pillar does not give the ``kubernetes`` artifact there is no kubectl: the state
    says so and changes nothing.

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
        if __opts__["test"]:
            outcome = __salt__["kubesalt_manifest.plan"](source=source, wait=wait, what=what)
            ret["result"] = None if outcome["changes"] else True
        else:
            outcome = __salt__["kubesalt_manifest.converge"](source=source, wait=wait, what=what)
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    ret["changes"] = outcome["changes"]
    ret["comment"] = outcome["comment"]
    return ret
