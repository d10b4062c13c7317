"""
kubesalt_encryption: a master's encryption config for Secrets at rest, as a state.

The ``kubesalt_encryption`` execution module does the work (its docstring says where the
keys come from and how they travel). ``test=True`` names the provider and the key names a
real run would write, never a key.

.. code-block:: yaml

    kubesalt-encryption-config-current:   # on every master
      kubesalt_encryption.config_current:
        - name: /etc/kubernetes/encryption-config.yaml
"""

from salt.exceptions import CommandExecutionError

import kubesalt_core.loader


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_encryption.config_current")


def config_current(name):
    """
    The apiserver's encryption config holds pillar's provider and the CA host's keys.

    name
        The file (``paths:kubernetes_dir``/encryption-config.yaml), for the output.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        if __opts__["test"]:
            outcome = __salt__["kubesalt_encryption.plan"]()
            ret["result"] = None if outcome["changes"] else True
        else:
            outcome = __salt__["kubesalt_encryption.config_current"]()
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = f"nothing was written: {err}"
        return ret
    ret["changes"] = outcome["changes"]
    ret["comment"] = outcome["comment"]
    return ret
