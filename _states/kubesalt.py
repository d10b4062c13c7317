"""
kubesalt: states that guard a highstate.

``kubesalt.validated`` runs first in every kubesalt highstate (``order: 1`` and
``failhard: True`` in ``states/kubesalt/validate.sls``): when the pillar is invalid it
fails, lists every problem, and the run stops before anything changes.

.. code-block:: yaml

    kubesalt-pillar-validated:
      kubesalt.validated:
        - order: 1
        - failhard: True
"""

import kubesalt_core.loader


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt.validate")


def validated(name="kubesalt", defaults=None):
    """
    Succeed when the ``kubesalt`` pillar is valid; fail with every problem otherwise.

    Validation only reads, so it gives the same verdict with ``test=True``: an invalid
    pillar fails a dry run too. Warnings are reported but do not fail the state.

    name
        A label for the output; the pillar key is always ``kubesalt``.

    defaults
        The formula defaults (``import_yaml`` of defaults.yaml). Default: read them from
        ``salt://kubesalt/defaults.yaml``.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    report = __salt__["kubesalt.validate"](defaults=defaults)
    if report["warnings"]:
        ret["warnings"] = report["warnings"]
    if not report["valid"]:
        ret["result"] = False
        ret["comment"] = (
            f"pillar 'kubesalt' is invalid ({len(report['errors'])} errors); the run stops "
            "here and nothing was changed:\n- " + "\n- ".join(report["errors"])
        )
        return ret
    ret["comment"] = "pillar 'kubesalt' is valid"
    if report["warnings"]:
        ret["comment"] += f" ({len(report['warnings'])} warnings)"
    return ret


def unassigned(name):
    """
    Say why this minion gets no kubesalt states. Changes nothing and succeeds, so a shared
    master can target ``'*'`` without failing minions that are not in the cluster.

    name
        A label for the output.
    """
    return {
        "name": name,
        "result": True,
        "changes": {},
        "comment": __salt__["kubesalt.unassigned_reason"]()
        or "this minion has kubesalt roles; apply the highstate to converge it",
    }
