"""
kubesalt_upgrade: Kubernetes version changes, node by node, as the upgrade orchestration
runs them.

A highstate refuses to change a node's Kubernetes version (``kubesalt_upgrade.version_held``
runs first in every highstate, from ``kubesalt.validate``). The version changes only
through ``salt-run state.orchestrate kubesalt.orch.upgrade``, which passes its
authorization as the inline pillar ``kubesalt_upgrade`` (``{version, components}``) with
each step. The decisions are in ``_utils/kubesalt_core/upgrade.py``; this module asks the
node and the cluster.

On any node: :func:`installed` (what its binaries report), :func:`held`, :func:`scope`.
The orchestration's steps on the cluster (drain, wait for a node or an apiserver) are
``kubesalt_node``'s.

CLI Example:

.. code-block:: bash

    salt '*' kubesalt_upgrade.installed
    salt worker-1 kubesalt_upgrade.held
"""

import os
import subprocess

from salt.exceptions import CommandExecutionError

import kubesalt_core.artifact
import kubesalt_core.upgrade

VERSION_TIMEOUT = 30


def _config():
    return __salt__["kubesalt.config"]()


def _authorization():
    return __pillar__.get(kubesalt_core.upgrade.AUTHORIZATION_KEY)


def _run(argv, timeout):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err


def installed():
    """
    The Kubernetes version each of this node's Kubernetes binaries reports
    (``{binary: "1.37.2"}``; None for one not installed or that names no version).

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_upgrade.installed
    """
    config = _config()
    found = {}
    for binary in __salt__["kubesalt_artifact.needed"]():
        if binary not in kubesalt_core.upgrade.KUBERNETES_BINARIES:
            continue
        path = kubesalt_core.artifact.executable(config, "kubernetes", binary)
        if not os.access(path, os.X_OK):
            found[binary] = None
            continue
        proc = _run(kubesalt_core.upgrade.version_argv(path, binary), VERSION_TIMEOUT)
        found[binary] = kubesalt_core.upgrade.reported_version(proc.stdout + proc.stderr)
    return found


def held():
    """
    Why a state run here must not change the Kubernetes version: a list of messages,
    empty when it may go on (nothing installed yet, the versions match pillar, or the
    upgrade orchestration authorized this version).

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_upgrade.held
    """
    config = _config()
    if __opts__["id"] not in config["nodes"]:
        return []
    target = str(config["versions"]["kubernetes"])
    return kubesalt_core.upgrade.held(__opts__["id"], installed(), target, _authorization())


def scope():
    """
    The units the orchestration's current step may touch on this node (its inline pillar
    ``kubesalt_upgrade:components``), or None for every unit of the node's roles.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_upgrade.scope
    """
    return kubesalt_core.upgrade.scope(_authorization())
