"""
kubesalt_unit: a running unit holds the certificates kubesalt last issued for it.

Most components read their certificates and kubeconfig once, when they start. When
``kubesalt.pki`` re-issues one (renewal before expiry, a changed SAN), the unit that
started before it is restarted; a unit started after it, or not running, is left alone.
The decision is ``kubesalt_unit.stale_credentials`` (file times against the unit's start).

.. code-block:: yaml

    kubesalt-unit-calico-typha-credentials-current:
      kubesalt_unit.credentials_current:
        - name: calico-typha
"""

import subprocess

from salt.exceptions import SaltInvocationError

import kubesalt_core.loader

__virtual_aliases__ = ("k8s_unit",)  # before 0.2 (README, "Module names")


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_unit.stale_credentials")


def credentials_current(name):
    """
    Unit ``name`` (a component of this node) started after its certificate and kubeconfig
    files were last written; restarted when not.

    CLI Example:

    .. code-block:: bash

        salt worker-1 state.single kubesalt_unit.credentials_current kubelet
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        stale = __salt__["kubesalt_unit.stale_credentials"](name)
    except SaltInvocationError as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    if not stale:
        ret["comment"] = f"{name} holds its current certificates"
        return ret
    ret["changes"] = {"restarted": True, "newer than its start": stale}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would be restarted: {', '.join(stale)} re-issued since it started"
        return ret
    proc = subprocess.run(
        ["systemctl", "restart", f"{name}.service"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = f"restarting {name} failed: {proc.stderr.strip()[-500:]}"
        return ret
    ret["comment"] = f"{name} restarted: {', '.join(stale)} re-issued since it started"
    return ret
