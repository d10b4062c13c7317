"""
kubesalt_artifact: one binary of the catalogue is installed as pillar ``artifacts`` says.

Thin: the decision is ``kubesalt_artifact.check``, the work ``kubesalt_artifact.install`` (see the
module for the download, the checksum and the atomic replace). A unit that runs the binary
``watch``es this state, so a new version restarts exactly the units that use it.

.. code-block:: yaml

    kubesalt-artifact-kube-apiserver:
      kubesalt_artifact.installed:
        - name: kube-apiserver
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.loader

__virtual_aliases__ = ("k8s_artifact",)  # before 0.2 (README, "Module names")


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_artifact.check")


def installed(name):
    """
    Binary ``name`` is installed from its artifact's source and matches it.

    ``source: url``: downloaded and checked against the sha256 when missing, when the
    artifact changed (a new version or sha256) or when the file on disk is not what
    kubesalt installed. ``source: package``: the package is installed. ``source: path``:
    the file exists and is executable (kubesalt does not manage it).

    CLI Example:

    .. code-block:: bash

        salt worker-1 state.single kubesalt_artifact.installed containerd
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        row = __salt__["kubesalt_artifact.check"](name)
        if row["source"] == "package":
            return _package(ret, row)
        if row["reason"] is None:
            ret["comment"] = f"{name} {row['version']} is installed at {row['path']}"
            return ret
        if row["source"] == "path":
            ret["result"] = False
            ret["comment"] = row["reason"]
            return ret
        change = {"path": row["path"], "version": row["version"], "reason": row["reason"]}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = {"installed": change}
            ret["comment"] = f"would install {name} {row['version']}: {row['reason']}"
            return ret
        __salt__["kubesalt_artifact.install"](name)
        ret["changes"] = {"installed": change}
        ret["comment"] = f"installed {name} {row['version']} at {row['path']} ({row['reason']})"
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        ret["comment"] = str(err)
    return ret


def _package(ret, row):
    ret.update(__states__["pkg.installed"](row["package"]))
    ret["name"] = row["name"]
    return ret
