"""
k8s_unit: the systemd units of the cluster's components, rendered for this node.

The units and their command lines, environments and config files are data and pure
functions in ``_utils/kubesalt_units.py`` (one record per unit). This module renders them
from the validated pillar for the minion it runs on; the formula (``kubesalt.units``) writes
what :func:`rendered` returns with ``file.managed``, so test=True shows exactly which file
would change. A unit whose artifact pillar declares ``source: unavailable`` is written but
never enabled or started.

CLI Example:

.. code-block:: bash

    salt worker-1 k8s_unit.rendered
    salt master-1 k8s_unit.render kube-apiserver
    salt worker-1 k8s_unit.verify containerd
"""

import subprocess

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:  # synced from file_roots: the synced _utils directory is on sys.path
    import kubesalt_artifacts
    import kubesalt_pki
    import kubesalt_units
except ImportError:  # installed with pip
    from kubesalt_ext.utils import kubesalt_artifacts, kubesalt_pki, kubesalt_units

__virtualname__ = "k8s_unit"


def __virtual__():
    return __virtualname__


def _files(files):
    return {path: {"text": text, "mode": f"{mode:04o}"} for path, (text, mode) in files.items()}


def _as_dict(config, rendered):
    unit = rendered.unit
    spec = (config.get("artifacts") or {}).get(unit.artifact) or {}
    available = kubesalt_artifacts.available(config, unit.artifact)
    return {
        "name": unit.name,
        "unit": unit.unit_name,
        "unit_path": rendered.unit_path,
        "unit_text": rendered.unit_text,
        "executable": rendered.executable,
        "artifact": unit.artifact,
        "available": available,
        "unavailable_reason": None if available else spec.get("reason") or "not in pillar",
        "files": _files(rendered.files),
        "directories": list(rendered.directories),
        "reload": unit.reload,
        "uses_pki": bool(unit.certs or unit.kubeconfig),
        "binaries": [b.name for b in kubesalt_artifacts.CATALOGUE if unit.unit_name in b.units],
    }


def render(name):
    """
    Unit ``name`` as this node would write it: unit path and text, its config files, the
    executable, and whether its artifact is available.

    CLI Example:

    .. code-block:: bash

        salt master-1 k8s_unit.render kube-apiserver
    """
    config = __salt__["kubesalt.config"]()
    node_id = __grains__["id"]
    if node_id not in config["nodes"]:
        raise CommandExecutionError(f"{node_id} is not under pillar kubesalt:nodes")
    try:
        kubesalt_units.spec(name)
    except KeyError as err:
        raise SaltInvocationError(str(err.args[0])) from None
    return _as_dict(config, kubesalt_units.render(config, node_id, name))


def rendered():
    """
    Every unit of this node's roles (etcd has its own formula), rendered.

    CLI Example:

    .. code-block:: bash

        salt worker-1 k8s_unit.rendered
    """
    config = __salt__["kubesalt.config"]()
    node_id = __grains__["id"]
    if node_id not in config["nodes"]:
        return []
    return [_as_dict(config, r) for r in kubesalt_units.node_units(config, node_id)]


def verify(name):
    """
    Run ``systemd-analyze verify`` on installed unit ``name``; returns its findings (every
    line it wrote to stderr; an empty list means clean). A missing executable is a finding:
    for a unit whose artifact is unavailable that is expected.

    CLI Example:

    .. code-block:: bash

        salt worker-1 k8s_unit.verify containerd
    """
    unit = render(name)
    try:
        proc = subprocess.run(
            ["systemd-analyze", "verify", unit["unit_path"]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err
    return [line for line in proc.stderr.splitlines() if line.strip()]


def kernel():
    """
    What a worker's kernel needs for kube-proxy (IPVS) and pod routing: the modules-load.d
    and sysctl.d files, the modules, and whether to load and apply them now (only where
    kube-proxy's artifact is available). Empty on a node without the worker role.

    CLI Example:

    .. code-block:: bash

        salt worker-1 k8s_unit.kernel
    """
    config = __salt__["kubesalt.config"]()
    node_id = __grains__["id"]
    node = config["nodes"].get(node_id)
    if not node or "worker" not in node["roles"]:
        return {}
    ctx = kubesalt_units.Context(config, node_id, kubesalt_pki.Layout.of(config))
    files = kubesalt_units.kernel_files(ctx)
    return {
        "files": _files(files),
        "modules": list(kubesalt_units.IPVS_MODULES),
        "sysctl_file": kubesalt_units.sysctl_path(ctx),
        "apply": kubesalt_artifacts.available(config, "kubernetes"),
    }
