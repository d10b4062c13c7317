"""
kubesalt_pki: the cluster's CAs and each node's certificates, as states.

The work is done by the ``kubesalt_pki`` execution module (its docstring explains the trust
model); these states only report it. ``test=True`` names every certificate a real run
would issue, and why, without writing a file or creating a CA.

.. code-block:: yaml

    kubesalt-pki-cas-present:            # on the CA host only
      kubesalt_pki.cas_present:
        - name: /etc/kubesalt/ca

    kubesalt-pki-certificates-present:   # on every master and worker
      kubesalt_pki.certificates_present:
        - name: /etc/kubernetes/pki
"""

from salt.exceptions import CommandExecutionError

import kubesalt_core.loader

__virtual_aliases__ = ("k8s_pki",)  # before 0.2 (README, "Module names")


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_pki.issue")


def cas_present(name):
    """
    The kubernetes, etcd and front-proxy CAs exist on this host (the CA host). Creates the
    missing ones; never replaces one that exists.

    name
        The CA directory (``paths:ca_dir``), for the output.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    missing = __salt__["kubesalt_ca.ca_missing"]()
    if not missing:
        ret["comment"] = "every CA exists"
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"created": missing}
        ret["comment"] = "would create " + ", ".join(missing)
        return ret
    try:
        created = __salt__["kubesalt_ca.ca_init"]()
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    ret["changes"] = {"created": created} if created else {}
    ret["comment"] = "created " + ", ".join(created) if created else "every CA exists"
    return ret


def certificates_present(name):
    """
    This node holds every certificate its roles need, each valid, signed by the current CA,
    matching its key and the catalogue, and not within ``pki:renew_before_days`` of expiry.

    name
        The node's PKI directory (``paths:pki_dir``), for the output.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        if __opts__["test"]:
            outcome = __salt__["kubesalt_pki.plan"]()
            ret["result"] = None if outcome["changes"] else True
        else:
            outcome = __salt__["kubesalt_pki.issue"]()
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = f"nothing was written: {err}"
        return ret
    ret["changes"] = outcome["changes"]
    ret["comment"] = outcome["comment"]
    return ret
