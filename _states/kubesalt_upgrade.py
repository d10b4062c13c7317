"""
kubesalt_upgrade: a highstate does not change the Kubernetes version by itself.

``states/kubesalt/validate.sls`` runs :func:`version_held` right after pillar validation,
with ``failhard``: on a node whose Kubernetes binaries report another version than pillar
``versions:kubernetes``, the run stops before anything changes, naming the node, both
versions and the orchestration that makes the change (``kubesalt.orch.upgrade``), which
authorizes each of its steps with the inline pillar ``kubesalt_upgrade``.

.. code-block:: yaml

    kubesalt-kubernetes-version-held:
      kubesalt_upgrade.version_held:
        - order: 2
        - failhard: True
"""

import kubesalt_core.loader


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_upgrade.held")


def version_held(name="kubernetes"):
    """
    Succeed when this state run may go on: no Kubernetes binary here reports a version
    other than pillar's, or the upgrade orchestration authorized pillar's version. Fails
    otherwise (with ``test=True`` too: it only reads).

    name
        A label for the output.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    problems = __salt__["kubesalt_upgrade.held"]()
    if problems:
        ret["result"] = False
        ret["comment"] = "\n".join(problems)
        return ret
    authorized = __salt__["kubesalt_upgrade.scope"]()
    ret["comment"] = "the Kubernetes version is the one pillar gives, or the upgrade authorized it"
    if authorized:
        ret["comment"] += f" (this step: {', '.join(authorized)})"
    return ret
