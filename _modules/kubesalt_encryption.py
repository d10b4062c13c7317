"""
kubesalt_encryption: Secrets encrypted at rest, on the masters.

Every apiserver reads ``encryption-config.yaml`` (``paths:kubernetes_dir``, 0600) at start:
the provider pillar chooses (``apiserver:encryption:provider``: ``aescbc``, ``secretbox``,
or ``identity`` for plain text) writes, every other one follows so that whatever was
stored before stays readable. The keys come from the CA host (``kubesalt_ca``): this node
asks with a public key it made for that one request and gets them sealed to it, so no
key is ever in pillar, in the mine, or readable in a job return. The apiserver reads a
rewritten file again by itself within a minute (no restart; :func:`loaded` waits for it).

A rotation (``salt-run state.orchestrate kubesalt.orch.encryption_key_rotate``): a new key
staged on the CA host and loaded by every apiserver; promoted to write, and loaded by every
apiserver again; every Secret rewritten (:func:`rewrite_secrets`); the old key retired once
etcd holds no Secret written with it (:func:`stored` reads etcd raw), and dropped by every
apiserver.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_encryption.plan
    salt master-1 kubesalt_encryption.stored
    salt master-1 kubesalt_encryption.rewrite_secrets
"""

import hashlib
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import yaml
from salt.exceptions import CommandExecutionError

import kubesalt_core.artifact
import kubesalt_core.component_context
import kubesalt_core.control_plane_config
import kubesalt_core.encryption
import kubesalt_core.errors
import kubesalt_core.etcd
import kubesalt_core.etcd_client
import kubesalt_core.files
import kubesalt_core.pillar
import kubesalt_core.pki

# A rewrite of every Secret may take this long (about 100 per second here).
REWRITE_TIMEOUT = 600
# The apiserver looks at its encryption config once a minute.
LOAD_TIMEOUT = 150


def _config():
    return __salt__["kubesalt.config"]()


def _is_master(config):
    return "master" in kubesalt_core.pillar.roles_of(config, __opts__["id"])


def _held(path):
    """``(provider that writes, key names)`` of the file on disk; ``(None, [])`` without one."""
    try:
        with open(path, encoding="utf-8") as handle:
            return kubesalt_core.encryption.configured(yaml.safe_load(handle))
    except FileNotFoundError:
        return None, []
    except yaml.YAMLError:
        return None, []


def _published_names():
    """The key names the CA host publishes, or None when it does not answer."""
    answer = __salt__["kubesalt_pki.ca_answer"](mine=True)
    if answer is None:
        return None
    return list(answer.get("encryption_keys") or [])


def _planned(config):
    """``(path, changes, comment)`` of what a run would do here."""
    path = kubesalt_core.control_plane_config.encryption_config_path(config)
    provider = config["apiserver"]["encryption"]["provider"]
    held_provider, held_names = _held(path)
    names = _published_names()
    if names is None:
        if held_names or held_provider:
            return path, {}, f"the CA host does not answer; {path} kept as it is"
        raise CommandExecutionError(
            f"the CA host does not answer and {path} does not exist: the apiserver cannot "
            "start without its encryption config"
        )
    if held_provider == provider and held_names == names and names:
        return path, {}, f"{path}: {provider} writes, keys {', '.join(names)}"
    change = {"provider": provider, "keys": names or ["(made by the CA host)"]}
    if held_provider is not None:
        change["was"] = {"provider": held_provider, "keys": held_names}
    return path, {"encryption config": change}, ""


def plan():
    """
    What :func:`config_current` would change on this master: ``{"changes": {...},
    "comment": ...}``; key names only, never keys.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_encryption.plan
    """
    config = _config()
    if not _is_master(config):
        return {"changes": {}, "comment": f"{__opts__['id']} is not a master"}
    path, changes, comment = _planned(config)
    return {"changes": changes, "comment": comment or f"would write {path}"}


def config_current():
    """
    Write this master's encryption config from the CA host's key set when it differs from
    pillar's provider or the CA host's keys. Returns ``{"changes", "comment"}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_encryption.config_current
    """
    config = _config()
    if not _is_master(config):
        return {"changes": {}, "comment": f"{__opts__['id']} is not a master"}
    path, changes, comment = _planned(config)
    if not changes:
        return {"changes": {}, "comment": comment}
    private, public = kubesalt_core.encryption.request_key()
    answer = __salt__["kubesalt_pki.ca_answer"]({"encryption_key": public})
    if not answer or "encryption" not in answer:
        raise CommandExecutionError("the CA host sent no encryption keys; nothing was written")
    keys = kubesalt_core.encryption.unseal(answer["encryption"], private)["keys"]
    provider = config["apiserver"]["encryption"]["provider"]
    document = kubesalt_core.encryption.configuration(provider, keys)
    kubesalt_core.files.write_atomically(
        path, kubesalt_core.component_context.yaml_text(document), 0o600
    )
    names = kubesalt_core.encryption.names(keys)
    changes["encryption config"]["keys"] = names
    return {"changes": changes, "comment": f"wrote {path}: {provider} writes, keys {names}"}


def stored():
    """
    What every Secret in etcd is stored with, read raw from etcd (not through an
    apiserver): ``{"aescbc:<key name>": count, "plain": count}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_encryption.stored
    """
    config = _config()
    layout = kubesalt_core.pki.Layout.of(config)
    try:
        gateway = kubesalt_core.etcd_client.tls_gateway(
            kubesalt_core.etcd.master_endpoints(config),
            layout.cert("apiserver-etcd-client"),
            layout.key("apiserver-etcd-client"),
            layout.trusted_ca("etcd-ca"),
        )
        values = kubesalt_core.etcd_client.values(
            gateway, kubesalt_core.encryption.SECRETS_PREFIX.encode()
        )
        counts = {}
        for _, value in values:
            what = kubesalt_core.encryption.stored_with(value)
            counts[what] = counts.get(what, 0) + 1
        return counts
    except (ValueError, kubesalt_core.errors.EtcdError, kubesalt_core.errors.Unreachable) as err:
        raise CommandExecutionError(f"{type(err).__name__}: {err}") from err


def _kubectl(config):
    command = kubesalt_core.pki.admin_kubectl(config)
    if command is None:
        raise CommandExecutionError(
            "kubectl is not available: pillar gives no artifacts:kubernetes"
        )
    return command


def rewrite_secrets(timeout=REWRITE_TIMEOUT):
    """
    Rewrite every Secret unchanged through the apiserver, so that each is stored with the
    key that writes now; then read etcd raw and say what they are stored with. A Secret
    changed by someone else meanwhile (a conflict) was written with that key already.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_encryption.rewrite_secrets
    """
    config = _config()
    kubectl = _kubectl(config)
    started = time.monotonic()
    listed = subprocess.run(
        [*kubectl, "get", "secrets", "--all-namespaces", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if listed.returncode != 0:
        raise CommandExecutionError(f"listing Secrets failed: {listed.stderr.strip()[-500:]}")
    count = len(json.loads(listed.stdout).get("items") or [])
    replaced = subprocess.run(
        [*kubectl, "replace", "-f", "-"],
        input=listed.stdout,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    errors = [
        line
        for line in replaced.stderr.splitlines()
        if line.strip() and "Conflict" not in line and "NotFound" not in line
    ]
    if errors:
        raise CommandExecutionError(
            f"rewriting Secrets failed for {len(errors)}: {'; '.join(errors[:5])}"
        )
    return {
        "secrets": count,
        "rewritten": replaced.stdout.count(" replaced"),
        "seconds": round(time.monotonic() - started, 1),
        "stored": stored(),
    }


def _metrics(config):
    """This master's apiserver's /metrics (as admin), or None when it does not answer."""
    layout = kubesalt_core.pki.Layout.of(config)
    ip = config["nodes"][__opts__["id"]]["ip"]
    context = ssl.create_default_context(cafile=layout.trusted_ca("kubernetes-ca"))
    context.load_cert_chain(layout.cert("admin"), layout.key("admin"))
    url = f"https://{ip}:{kubesalt_core.pillar.APISERVER_PORT}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None


def loaded(timeout=LOAD_TIMEOUT):
    """
    Wait until this master's apiserver uses the encryption config on disk: its metric
    ``apiserver_encryption_config_controller_last_config_info`` carries the file's sha256
    (it reads the file again within a minute of a change, without a restart). Returns the
    seconds it took.

    CLI Example:

    .. code-block:: bash

        salt -C 'I@kubesalt:nodes:*:roles:master' kubesalt_encryption.loaded
    """
    config = _config()
    path = kubesalt_core.control_plane_config.encryption_config_path(config)
    with open(path, "rb") as handle:
        wanted = "sha256:" + hashlib.sha256(handle.read()).hexdigest()
    started = time.monotonic()
    while True:
        if kubesalt_core.encryption.loaded_hash_in(_metrics(config) or "", wanted):
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > float(timeout):
            raise CommandExecutionError(
                f"the apiserver did not load {path} ({wanted}) within {timeout} s"
            )
        time.sleep(2)
