"""
kubesalt_unit: the systemd units of the cluster's components, rendered for this node.

The units and their command lines, environments and config files are data and pure
functions in ``kubesalt_core`` (``components.py``, one record per unit, and the modules it
names; ``unit.py`` writes the unit files). This module renders them
from the validated pillar for the minion it runs on; the formula (``kubesalt.units``) writes
what :func:`rendered` returns with ``file.managed``, so test=True shows exactly which file
would change. A unit whose artifact pillar does not give is written but never enabled or
started.

CLI Example:

.. code-block:: bash

    salt worker-1 kubesalt_unit.rendered
    salt master-1 kubesalt_unit.render kube-apiserver
    salt worker-1 kubesalt_unit.verify containerd
    salt master-1 kubesalt_unit.health
"""

import os
import ssl
import subprocess
import urllib.error
import urllib.request

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.artifact
import kubesalt_core.component_context
import kubesalt_core.components
import kubesalt_core.node_config
import kubesalt_core.pillar
import kubesalt_core.pki
import kubesalt_core.unit

__virtual_aliases__ = ("k8s_unit",)  # before 0.2 (README, "Module names")


def _files(files):
    return {path: {"text": text, "mode": f"{mode:04o}"} for path, (text, mode) in files.items()}


def _as_dict(config, rendered):
    unit = rendered.unit
    missing = [a for a in unit.artifacts_needed if not kubesalt_core.artifact.available(config, a)]
    available = not missing
    return {
        "name": unit.name,
        "unit": unit.unit_name,
        "unit_path": rendered.unit_path,
        "unit_text": rendered.unit_text,
        "executable": rendered.executable,
        "artifact": missing[0] if missing else unit.artifact,
        "available": available,
        "unavailable_reason": None if available else f"artifacts:{missing[0]} is not in pillar",
        "files": _files(rendered.files),
        # file.managed's check_cmd per file: the component's own check of its config.
        "checks": rendered.checks,
        "directories": list(rendered.directories),
        "reload": unit.reload,
        "uses_pki": bool(unit.certs or unit.kubeconfig),
        "credentials": list(rendered.credentials),
        # It reads the encryption config kubesalt_encryption writes (the apiserver).
        "reads_encryption_config": unit.encryption_config,
        "binaries": [
            b.name
            for b in kubesalt_core.artifact.CATALOGUE
            if unit.unit_name in kubesalt_core.components.units_of_binary(b)
        ],
    }


def render(name):
    """
    Unit ``name`` as this node would write it: unit path and text, its config files, the
    executable, and whether its artifact is available.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_unit.render kube-apiserver
    """
    config = __salt__["kubesalt.config"]()
    node_id = __opts__["id"]
    if node_id not in config["nodes"]:
        raise CommandExecutionError(f"{node_id} is not under pillar kubesalt:nodes")
    try:
        kubesalt_core.components.spec(name)
    except KeyError as err:
        raise SaltInvocationError(str(err.args[0])) from None
    return _as_dict(config, kubesalt_core.unit.render(config, node_id, name))


def _units_here(config, node_id, include_etcd=False):
    roles = config["nodes"][node_id]["roles"]
    return [
        c
        for c in kubesalt_core.components.for_roles(roles)
        if (include_etcd or c.state == "kubesalt.units")
        and kubesalt_core.components.is_wanted(c, config)
    ]


def rendered():
    """
    Every unit of this node's roles (etcd has its own formula), rendered.

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_unit.rendered
    """
    config = __salt__["kubesalt.config"]()
    node_id = __opts__["id"]
    if node_id not in config["nodes"]:
        return []
    return [_as_dict(config, r) for r in kubesalt_core.unit.node_units(config, node_id)]


def unwanted():
    """
    The units of this node's roles the site turned off (the apiserver proxy with
    ``cluster:apiserver_endpoint`` set): ``[{name, unit, unit_path}]``, which the formula
    stops and removes.

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_unit.unwanted
    """
    config = __salt__["kubesalt.config"]()
    node_id = __opts__["id"]
    if node_id not in config["nodes"]:
        return []
    systemd_dir = config["paths"]["systemd_dir"]
    return [
        {"name": c.name, "unit": c.unit_name, "unit_path": f"{systemd_dir}/{c.unit_name}"}
        for c in kubesalt_core.unit.unwanted_units(config, node_id)
    ]


def verify(name):
    """
    Run ``systemd-analyze verify`` on installed unit ``name``; returns its findings (every
    line it wrote to stderr; an empty list means clean). A missing executable is a finding:
    for a unit whose artifact pillar does not give that is expected.

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_unit.verify containerd
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
    What this node's kernel needs: on a worker, for kube-proxy's mode and pod routing, the
    sysctl.d file (and for IPVS the modules-load.d file and its modules), the host packages
    the mode uses, and whether to load and apply them now (only where kube-proxy's artifact
    is available); on a router, forwarding (it routes the pods' traffic it learns over BGP).
    Empty on a node with neither role.

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_unit.kernel
    """
    config = __salt__["kubesalt.config"]()
    node_id = __opts__["id"]
    node = config["nodes"].get(node_id)
    roles = node["roles"] if node else []
    if "worker" not in roles and "router" not in roles:
        return {}
    ctx = kubesalt_core.component_context.Context(
        config, node_id, kubesalt_core.pki.Layout.of(config)
    )
    if "worker" not in roles:
        return {
            "files": _files(kubesalt_core.node_config.kernel_files(ctx, routing_only=True)),
            "modules": [],
            "packages": list(kubesalt_core.node_config.ROUTER_PACKAGES),
            "sysctl_file": kubesalt_core.node_config.sysctl_path(ctx),
            "apply": True,
        }
    files = kubesalt_core.node_config.kernel_files(ctx)
    return {
        "files": _files(files),
        "modules": list(kubesalt_core.node_config.kernel_modules(config)),
        "packages": list(
            kubesalt_core.node_config.MODE_PACKAGES[
                kubesalt_core.node_config.kube_proxy_mode(config)
            ]
        ),
        "sysctl_file": kubesalt_core.node_config.sysctl_path(ctx),
        "apply": kubesalt_core.artifact.available(config, "kubernetes"),
    }


PROBE_TIMEOUT = 5


def _ask(probe, timeout):
    """GET the probe's URL: ``(answered 200, what it said)``."""
    context = None
    if probe.url.startswith("https://"):
        if probe.ca:
            context = ssl.create_default_context(cafile=probe.ca)
        else:  # a self-signed serving certificate, asked on the node's own address
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if probe.cert:
            context.load_cert_chain(probe.cert, probe.key)
    # No proxy from the environment: the probe asks the component on this node.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(probe.url, timeout=timeout) as answer:
            body = answer.read(300).decode(errors="replace").strip()
            # A one-line answer ("ok") is worth showing; a report table is not.
            shown = body[:80] if "\n" not in body else ""
            return answer.status == 200, f"{answer.status} {shown}".strip()
    except urllib.error.HTTPError as err:
        body = err.read(300).decode(errors="replace").strip().splitlines()
        return False, f"{err.code} {' '.join(body)[:160]}".strip()
    except (urllib.error.URLError, OSError, ssl.SSLError) as err:
        reason = getattr(err, "reason", err)
        return False, f"{type(reason).__name__}: {reason}"[:200]


def health(name=None, timeout=PROBE_TIMEOUT):
    """
    Ask this node's components whether they work, each by its own health endpoint (the
    apiserver's ``/readyz``, etcd's ``/health``, the scheduler's and controller-manager's
    health ports, Typha's and felix's readiness, the kubelet's and kube-proxy's healthz):
    ``{unit: {"healthy": bool, "detail": what it answered, "url": ...}}``. Components without
    a probe, or whose artifact pillar does not give, are left out.

    name
        Only this component (e.g. ``kube-apiserver``).

    CLI Example:

    .. code-block:: bash

        salt -C 'I@kubesalt:nodes:*' kubesalt_unit.health
        salt master-1 kubesalt_unit.health kube-apiserver
    """
    config = __salt__["kubesalt.config"]()
    node_id = __opts__["id"]
    if node_id not in config["nodes"]:
        return {}
    if name is not None:
        try:
            components = [kubesalt_core.components.spec(name)]
        except KeyError as err:
            raise SaltInvocationError(str(err.args[0])) from None
    else:
        components = _units_here(config, node_id, include_etcd=True)
    answers = {}
    for component in components:
        if not all(kubesalt_core.artifact.available(config, a) for a in component.artifacts_needed):
            continue
        probe = kubesalt_core.components.probe(config, node_id, component.name)
        if probe is None:
            continue
        healthy, detail = _ask(probe, float(timeout))
        answers[component.unit_name] = {"healthy": healthy, "detail": detail, "url": probe.url}
    return answers


def _started_at(unit):
    """When ``unit`` last became active (epoch seconds), or None when it is not active."""
    shown = subprocess.run(
        ["systemctl", "show", "--timestamp=unix", "-p", "ActiveState,ActiveEnterTimestamp", unit],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    stamp = props.get("ActiveEnterTimestamp", "")
    if props.get("ActiveState") != "active" or not stamp.startswith("@"):
        return None
    return float(stamp[1:])


def stale_credentials(name, paths=None):
    """
    The certificate and kubeconfig files of unit ``name`` written after the unit started
    (re-issued by kubesalt while it ran): the unit still holds the old ones. Empty when the
    unit is not active.

    paths
        Other files to look at instead (etcd's unit and environment files).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_unit.stale_credentials calico-typha
    """
    config = __salt__["kubesalt.config"]()
    node_id = __opts__["id"]
    try:
        rendered = kubesalt_core.unit.render(config, node_id, name)
    except KeyError as err:
        raise SaltInvocationError(str(err.args[0])) from None
    modified = {}
    for path in paths or rendered.credentials:
        try:
            modified[path] = os.stat(path).st_mtime
        except FileNotFoundError:
            continue
    return kubesalt_core.unit.stale_credentials(_started_at(rendered.unit.unit_name), modified)


def retire(roles="worker"):
    """
    Stop and disable every unit of ``roles`` (comma-separated) installed on this host, for a
    node that leaves the cluster (``kubesalt.orch.remove_worker``: its kubelet must not
    register the Node again). Its files stay. Returns ``{unit: "stopped"}`` for each unit
    found.

    CLI Example:

    .. code-block:: bash

        salt worker-3 kubesalt_unit.retire worker
    """
    wanted = [r.strip() for r in str(roles).split(",") if r.strip()]
    unknown = [r for r in wanted if r not in kubesalt_core.pillar.ROLES]
    if not wanted or unknown:
        raise SaltInvocationError(
            f"Invalid value for roles: {roles!r}. Valid: {', '.join(kubesalt_core.pillar.ROLES)}"
        )
    stopped = {}
    for component in kubesalt_core.components.for_roles(wanted):
        unit = component.unit_name
        shown = subprocess.run(
            ["systemctl", "show", "-p", "LoadState", "--value", unit],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if shown.stdout.strip() in ("", "not-found"):
            continue
        proc = subprocess.run(
            ["systemctl", "disable", "--now", unit], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise CommandExecutionError(f"systemctl disable --now {unit}: {proc.stderr.strip()}")
        stopped[unit] = "stopped"
    return stopped
