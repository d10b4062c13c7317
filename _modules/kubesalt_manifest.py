"""
kubesalt_manifest: the cluster objects kubesalt owns, applied with server-side apply.

What is applied (``_utils/kubesalt_core/manifest.py``): the binding of the apiserver's
kubelet-client identity to ``system:kubelet-api-admin``, kube-proxy's and Calico's RBAC,
the ``calico-typha`` Service and Endpoints; then Calico's CRDs from their pinned artifact
(``artifacts:calico_crds``, installed by ``kubesalt_artifact`` to ``paths:manifest_dir``).

Everything goes through ``kubectl`` with the admin kubeconfig, on one master (the first by
minion id): ``kubectl diff --server-side`` decides whether anything would change (so a run
over applied objects changes nothing and test=True names what would), then
``kubectl apply --server-side --field-manager=kubesalt``.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_manifest.manifests
    salt master-1 kubesalt_manifest.diff
"""

import json
import os
import subprocess
import time

import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.artifact
import kubesalt_core.ingress
import kubesalt_core.manifest
import kubesalt_core.pki

__virtual_aliases__ = ("k8s_objects",)  # before 0.2 (README, "Module names")

# kubectl diff: 0 no differences, 1 differences found, >1 kubectl or diff failed.
DIFF_NONE, DIFF_FOUND = 0, 1
APISERVER_WAIT = 180


def _config():
    return __salt__["kubesalt.config"]()


def _crds_path(config):
    return os.path.join(config["paths"]["manifest_dir"], "calico-crds.yaml")


def manifests(part="all"):
    """
    The YAML stream kubesalt applies: its own objects, then Calico's CRDs when their
    artifact is installed.

    part
        ``all`` (default), ``namespaces`` (only the Namespaces kubesalt creates, applied
        first: objects in a namespace that does not exist yet cannot even be diffed), or
        ``rest`` (everything else).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.manifests
    """
    if part not in ("all", "namespaces", "rest"):
        raise SaltInvocationError(f"Invalid value {part!r} for part. Valid: all, namespaces, rest")
    config = _config()
    objects = kubesalt_core.manifest.cluster_objects(config)
    if part == "namespaces":
        objects = [o for o in objects if o["kind"] == "Namespace"]
    elif part == "rest":
        objects = [o for o in objects if o["kind"] != "Namespace"]
    text = yaml.safe_dump_all(objects, sort_keys=True) if objects else ""
    crds = _crds_path(config)
    with_crds = part != "namespaces" and kubesalt_core.artifact.available(config, "calico_crds")
    if with_crds and os.path.isfile(crds):
        with open(crds, encoding="utf-8") as handle:
            text += "---\n" + handle.read()
    return text


def _kubectl_command(config):
    """``[kubectl, --kubeconfig, admin.conf]``, or None when this node has no kubectl."""
    return kubesalt_core.pki.admin_kubectl(config)


def _run(argv, stdin, timeout=120):
    try:
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err


def _kubectl(config, verb):
    """``kubectl <verb> --server-side`` of a YAML stream on stdin, as kubesalt's manager.

    kubesalt owns these objects (pillar is the truth): a field someone else set since, say
    with ``kubectl label``, is taken back (``--force-conflicts``) instead of failing the run.
    """
    command = _kubectl_command(config)
    if command is None:
        raise CommandExecutionError(
            "kubectl is not available: pillar does not give artifacts:kubernetes"
        )
    field_manager = f"--field-manager={kubesalt_core.manifest.FIELD_MANAGER}"
    return [*command, verb, "--server-side", "--force-conflicts", field_manager, "-f", "-"]


# What kubectl says while the apiserver is not there yet (a master's first run starts it).
_NOT_YET = (
    "connection refused",
    "unable to connect",
    "the server is currently unable",
    "tls handshake timeout",
    "eof",
    "no route to host",
    "i/o timeout",
)


def _not_answering(stderr):
    text = stderr.lower()
    return any(words in text for words in _NOT_YET)


def kubectl_available():
    """
    True when this node has kubectl (pillar gives ``artifacts:kubernetes``).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.kubectl_available
    """
    return _kubectl_command(_config()) is not None


def ready(timeout=5):
    """
    True when kubectl is installed here and the apiserver answers ``/readyz``: a diff can be
    asked now. On a master's first run neither is there until the run installs and starts
    them.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.ready
    """
    command = _kubectl_command(_config())
    if command is None or not os.access(command[0], os.X_OK):
        return False
    try:
        proc = _run([*command, "get", "--raw", "/readyz"], None, timeout=float(timeout) + 5)
    except CommandExecutionError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == "ok"


def describe(stream):
    """
    ``Kind/namespace/name`` of every object in a YAML ``stream``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.describe "$(cat objects.yaml)"
    """
    return [kubesalt_core.manifest.describe(o) for o in yaml.safe_load_all(stream or "") if o]


def diff(wait=APISERVER_WAIT, stream=None):
    """
    ``kubectl diff --server-side`` of :func:`manifests` (or of the YAML ``stream`` given)
    against the cluster: the diff text ("" when nothing would change). Waits up to ``wait``
    seconds for the apiserver.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.diff
    """
    argv = _kubectl(_config(), "diff")
    stream = manifests() if stream is None else stream
    deadline = time.monotonic() + float(wait)
    while True:
        proc = _run(argv, stream)
        if proc.returncode in (DIFF_NONE, DIFF_FOUND):
            return proc.stdout if proc.returncode == DIFF_FOUND else ""
        # Only an apiserver that does not answer yet is worth waiting for.
        if time.monotonic() >= deadline or not _not_answering(proc.stderr):
            raise CommandExecutionError(f"kubectl diff failed: {proc.stderr.strip()[-2000:]}")
        time.sleep(3)


def apply(stream=None):
    """
    ``kubectl apply --server-side`` of :func:`manifests` (or of the YAML ``stream``
    given); returns kubectl's lines.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.apply
    """
    argv = _kubectl(_config(), "apply")
    proc = _run(argv, manifests() if stream is None else stream)
    if proc.returncode != 0:
        raise CommandExecutionError(f"kubectl apply failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.splitlines()


def missing_secrets():
    """
    The Secrets pillar names for the cluster objects (``ingress:default_tls_secret``) that
    do not exist or are not TLS Secrets: a message for each, naming the pillar key; ``[]``
    when every one is there (or none is named). Asks the apiserver.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.missing_secrets
    """
    config = _config()
    wanted = kubesalt_core.ingress.referenced_secrets(config)
    if not wanted:
        return []
    command = _kubectl_command(config)
    if command is None:
        raise CommandExecutionError(
            "kubectl is not available: pillar does not give artifacts:kubernetes"
        )
    problems = []
    for key, namespace, name in wanted:
        proc = _run([*command, "get", "secret", name, "-n", namespace, "-o", "json"], None, 30)
        if proc.returncode == 0:
            secret = json.loads(proc.stdout)
        elif "notfound" in proc.stderr.replace(" ", "").lower():
            secret = None
        else:
            raise CommandExecutionError(
                f"kubectl get secret {namespace}/{name} failed: {proc.stderr.strip()[-500:]}"
            )
        problems += kubesalt_core.ingress.secret_problems(secret, key, namespace, name)
    return problems


def _refuse_missing_secrets(source):
    if source != "kubesalt_manifest.manifests":
        return
    problems = missing_secrets()
    if problems:
        raise CommandExecutionError(
            "cluster objects not applied, nothing was changed: " + "; ".join(problems)
        )


def _stream(source, part):
    return __salt__[source](part=part)


def plan(source="kubesalt_manifest.manifests", wait=APISERVER_WAIT, what="cluster objects"):
    """
    What :func:`converge` would apply, and why; nothing is applied (what the state
    ``kubesalt_manifest.applied`` shows with test=True). Returns ``{"changes", "comment"}``.

    Before kubectl and the apiserver run (a first run starts them) it describes the objects;
    while a namespace is missing, the namespaces' diff (the objects in them can be diffed
    only once it exists); else ``kubectl diff --server-side`` of the objects.

    source
        The execution function that gives the YAML stream, called with
        ``part="namespaces"`` and ``part="rest"``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.plan
        salt master-1 kubesalt_manifest.plan source=kubesalt_calico.stream
    """
    if not ready():
        streams = "\n---\n".join([_stream(source, "namespaces"), _stream(source, "rest")])
        return {
            "changes": {"objects": describe(streams)},
            "comment": f"would apply {what} (server-side) once kubectl and the apiserver are "
            "up: this run installs or starts them, so there is nothing to diff against yet",
        }
    _refuse_missing_secrets(source)
    namespaces = _stream(source, "namespaces")
    new_namespaces = diff(wait=wait, stream=namespaces) if namespaces else ""
    if new_namespaces:
        return {
            "changes": {"diff": new_namespaces},
            "comment": f"would create namespaces, then apply the {what} in them "
            "(server-side; they can be diffed once their namespaces exist)",
        }
    difference = diff(wait=wait, stream=_stream(source, "rest"))
    if not difference:
        return {"changes": {}, "comment": f"{what} are applied"}
    return {"changes": {"diff": difference}, "comment": f"would apply {what} (server-side)"}


def converge(source="kubesalt_manifest.manifests", wait=APISERVER_WAIT, what="cluster objects"):
    """
    Apply the objects of ``source`` where ``kubectl diff --server-side`` finds a
    difference: the namespaces first, then the rest (see :func:`plan`). Returns
    ``{"changes", "comment"}``; ``changes`` holds the diff and kubectl's lines.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.converge
    """
    namespaces = _stream(source, "namespaces")
    new_namespaces = diff(wait=wait, stream=namespaces) if namespaces else ""
    # After the diff, which waits for the apiserver; before anything is applied.
    _refuse_missing_secrets(source)
    applied_lines = apply(stream=namespaces) if new_namespaces else []
    rest = _stream(source, "rest")
    difference = diff(wait=wait, stream=rest)
    if not difference and not applied_lines:
        return {"changes": {}, "comment": f"{what} are applied"}
    if difference:
        applied_lines += apply(stream=rest)
    return {
        "changes": {"diff": new_namespaces + difference, "applied": applied_lines},
        "comment": f"applied {what} (server-side)",
    }


def applies_here():
    """
    True on the one master that applies the cluster objects (the first by minion id).

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_manifest.applies_here
    """
    return kubesalt_core.manifest.applying_master(_config()) == __opts__["id"]


def leases(namespace="kube-system"):
    """
    The leader leases in ``namespace`` (the scheduler's, the controller-manager's, each
    apiserver's identity lease): ``{name: {"holder": ..., "renewed": ...}}``, as the
    apiserver answers.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_manifest.leases
    """
    command = _kubectl_command(_config())
    if command is None:
        raise CommandExecutionError(
            "kubectl is not available: pillar does not give artifacts:kubernetes"
        )
    proc = _run([*command, "get", "leases", "-n", namespace, "-o", "json"], None, timeout=30)
    if proc.returncode != 0:
        raise CommandExecutionError(f"kubectl get leases failed: {proc.stderr.strip()[-500:]}")
    found = {}
    for item in json.loads(proc.stdout).get("items", []):
        spec = item.get("spec") or {}
        found[item["metadata"]["name"]] = {
            "holder": spec.get("holderIdentity"),
            "renewed": spec.get("renewTime"),
        }
    return found
