"""
kubesalt: states that guard a highstate.

``kubesalt.validated`` runs first in every kubesalt highstate (``order: 1`` and
``failhard: True`` in ``states/kubesalt/validate.sls``): when the pillar is invalid it
fails, lists every problem, and the run stops before anything changes. On the master that
applies the cluster objects, once its apiserver answers, it also checks what only the
cluster knows: the Secrets pillar names (``ingress:default_tls_secret``) exist.

.. code-block:: yaml

    kubesalt-pillar-validated:
      kubesalt.validated:
        - order: 1
        - failhard: True
"""

from salt.exceptions import CommandExecutionError

import kubesalt_core.ingress
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
    missing = _missing_secrets()
    if missing:
        ret["result"] = False
        ret["comment"] = (
            f"pillar 'kubesalt' names {len(missing)} Secrets the cluster does not have; the "
            "run stops here and nothing was changed:\n- " + "\n- ".join(missing)
        )
        return ret
    ret["comment"] = "pillar 'kubesalt' is valid"
    if report["warnings"]:
        ret["comment"] += f" ({len(report['warnings'])} warnings)"
    return ret


def _missing_secrets():
    """The Secrets pillar names that the cluster lacks, asked on the applying master once
    its apiserver answers (on a first run there is none yet: the apply step asks then)."""
    if "kubesalt_manifest.applies_here" not in __salt__:
        return []
    if not __salt__["kubesalt_manifest.applies_here"]():
        return []
    if not kubesalt_core.ingress.referenced_secrets(__salt__["kubesalt.config"]()):
        return []
    if not __salt__["kubesalt_manifest.ready"]():
        return []
    try:
        return __salt__["kubesalt_manifest.missing_secrets"]()
    except CommandExecutionError:
        return []  # the apply step asks again and says what failed


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
