"""
kubesalt_ca: the cluster's certificate authorities, on the CA host only.

The one module of kubesalt that minions may call on another minion: the master's ``peer``
rule (``conf/master.d/kubesalt.conf``) lets every minion publish :func:`sign` to the CA
host, and nothing else. How a node uses it, and why it cannot get another node's
certificate: see ``kubesalt_pki`` (the node's side), whose :func:`kubesalt_pki.issue` asks
this module for what it needs.

What lives here
    The kubernetes, etcd and front-proxy CAs (``pki:ca_host``, else the first master by
    minion id), under ``paths:ca_dir`` (0700; keys 0600). They are created here and never
    read by anything but this module: they are not in pillar, mine, events, job returns or
    file_roots. The masters' service-account public keys are registered here too, so that
    every master can verify the tokens of the others.

The keys Secrets are encrypted with
    The apiservers of every master must hold the same keys, so one host makes them: this
    one, in ``encryption-keys.json`` under ``paths:ca_dir`` (0600). A master asks for them
    with a public key it made for that one request (X25519); the answer is sealed to it
    (``kubesalt_core.encryption``), so Salt's job cache and event bus, which carry every
    answer, hold only ciphertext, and only a node that is a master in this host's pillar,
    by its authenticated minion id, gets an answer at all. :func:`encryption_key_stage`,
    :func:`encryption_key_promote` and :func:`encryption_key_retire` are the steps of a
    rotation (``kubesalt.orch.encryption_key_rotate`` runs them in order).

What it publishes
    The public part of its answer (the CA certificates, the registered service-account
    public keys, and the names of the encryption keys in the order the apiservers use
    them, :func:`public`) goes to the Salt mine whenever it changes, so that a node with
    nothing to ask for reads it there instead of publishing to the CA host on every run.
    The master stores it under the CA host's authenticated id: no other minion can write
    it.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_ca.ca_missing
    salt master-1 kubesalt_ca.rotate_ca etcd-ca
    salt master-1 kubesalt_ca.encryption_keys
"""

import contextlib
import datetime
import fcntl
import json
import logging
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from salt.exceptions import CommandExecutionError, SaltException, SaltInvocationError

import kubesalt_core.certificates
import kubesalt_core.encryption
import kubesalt_core.errors
import kubesalt_core.files
import kubesalt_core.pem
import kubesalt_core.pki

log = logging.getLogger(__name__)

# k8s_pki: where its functions lived before 0.2, for one release (README, "Module names").
__virtual_aliases__ = ("k8s_pki",)


def _now():
    return datetime.datetime.now(datetime.UTC)


def _config():
    return __salt__["kubesalt.config"]()


@contextlib.contextmanager
def _ca_lock(layout):
    os.makedirs(layout.ca_dir, mode=0o700, exist_ok=True)
    os.chmod(layout.ca_dir, 0o700)
    with open(os.path.join(layout.ca_dir, ".lock"), "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_cas(layout):
    """``{ca: (cert, key)}`` for the CAs that exist; raises on a half-present CA."""
    cas = {}
    for name in kubesalt_core.pki.CAS:
        cert, key = (
            kubesalt_core.pem.certificate(layout.ca_cert(name)),
            kubesalt_core.pem.private_key(layout.ca_key(name)),
        )
        if cert is None and key is None:
            continue
        if cert is None or key is None:
            missing = layout.ca_cert(name) if cert is None else layout.ca_key(name)
            raise CommandExecutionError(
                f"CA {name} is incomplete: {missing} is missing or unreadable. kubesalt "
                "will not replace half a CA; restore it, or move both files aside to "
                "create a new CA (see kubesalt_ca.rotate_ca)"
            )
        if not kubesalt_core.certificates.same_public_key(cert.public_key(), key.public_key()):
            raise CommandExecutionError(
                f"CA {name}: {layout.ca_cert(name)} does not belong to {layout.ca_key(name)}"
            )
        cas[name] = (cert, key)
    return cas


def _ensure_cas(config, layout, create):
    """Load the CAs; with ``create``, make the missing ones. Returns (cas, created names).

    Without ``create`` nothing is written, not even the CA directory."""
    if not create and not os.path.isdir(layout.ca_dir):
        return {}, []
    with _ca_lock(layout):
        cas = _load_cas(layout)
        created = []
        if create:
            pki = config["pki"]
            for name in kubesalt_core.pki.CAS:
                if name in cas:
                    continue
                key = kubesalt_core.certificates.new_private_key(pki["key_type"])
                cert = kubesalt_core.certificates.build_ca(name, key, pki["ca_days"], _now())
                kubesalt_core.files.write_atomically(
                    layout.ca_key(name), kubesalt_core.certificates.key_pem(key), 0o600
                )
                kubesalt_core.files.write_atomically(
                    layout.ca_cert(name), kubesalt_core.certificates.cert_pem(cert), 0o644
                )
                cas[name] = (cert, key)
                created.append(name)
                log.info("kubesalt_ca: created CA %s in %s", name, layout.ca_dir)
    return cas, created


def _require_ca_host(config):
    host = kubesalt_core.pki.ca_host(config)
    if __opts__["id"] != host:
        raise CommandExecutionError(
            f"this is {__opts__['id']!r}; the CAs live on {host!r} (pillar kubesalt:pki:ca_host)"
        )
    return host


def ca_init():
    """
    Create the CAs that do not exist yet, on the CA host only.

    Returns the names of the CAs it created (``[]`` when all exist). Never replaces an
    existing CA; refuses a CA whose certificate or key is missing or mismatched.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.ca_init
    """
    config = _config()
    _require_ca_host(config)
    return _ensure_cas(config, kubesalt_core.pki.Layout.of(config), create=True)[1]


def ca_missing():
    """
    Return the CAs the CA host does not have yet (what :func:`ca_init` would create).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.ca_missing
    """
    config = _config()
    _require_ca_host(config)
    cas = _ensure_cas(config, kubesalt_core.pki.Layout.of(config), create=False)[0]
    return [name for name in kubesalt_core.pki.CAS if name not in cas]


def _registry(config, layout):
    """Registered service-account public keys of the nodes that are masters in pillar."""
    keys = {}
    for mid, node in sorted((config.get("nodes") or {}).items()):
        if kubesalt_core.pki.holds_service_account_key(node.get("roles") or []):
            pem = kubesalt_core.pem.read(os.path.join(layout.registry_dir, f"{mid}.pub"))
            if pem is not None:
                keys[mid] = pem.decode()
    return keys


def _register(config, layout, requester, public_key_pem):
    node = config["nodes"][requester]
    if not kubesalt_core.pki.holds_service_account_key(node.get("roles") or []):
        raise kubesalt_core.errors.SigningRefused(
            f"{requester!r} is not a master; it has no service-account key"
        )
    key = serialization.load_pem_public_key(public_key_pem.encode())
    path = os.path.join(layout.registry_dir, f"{requester}.pub")
    pem = kubesalt_core.certificates.public_pem(key)
    if kubesalt_core.pem.read(path) != pem:
        with _ca_lock(layout):
            os.makedirs(layout.registry_dir, mode=0o700, exist_ok=True)
            kubesalt_core.files.write_atomically(path, pem, 0o644)


def _answer(requester, request):
    """The CA host's reply to an authenticated ``requester``; see :func:`sign`."""
    config = _config()
    _require_ca_host(config)
    layout = kubesalt_core.pki.Layout.of(config)
    if requester not in (config.get("nodes") or {}):
        raise kubesalt_core.errors.SigningRefused(
            f"{requester!r} is not a node under kubesalt:nodes"
        )
    wanted = request.get("certificates") or {}
    sa_key = request.get("service_account_key")
    sealing_key = request.get("encryption_key")
    if not isinstance(wanted, dict) or not all(
        v is None or isinstance(v, str) for v in (sa_key, sealing_key)
    ):
        raise kubesalt_core.errors.SigningRefused(
            "request must be {certificates: {name: CSR PEM}, service_account_key: PEM, "
            "encryption_key: base64 X25519 public key}"
        )
    if sealing_key and not kubesalt_core.pki.holds_service_account_key(
        config["nodes"][requester].get("roles") or []
    ):
        raise kubesalt_core.errors.SigningRefused(
            f"{requester!r} is not a master; only masters hold the encryption keys"
        )
    csrs = {}
    for name, pem in wanted.items():
        try:
            csrs[name] = x509.load_pem_x509_csr(pem.encode())
        except (ValueError, AttributeError) as err:
            raise kubesalt_core.errors.SigningRefused(
                f"the CSR for {name!r} is not a PEM CSR"
            ) from err
    # A read-only question (test=True, or nothing to issue) never creates a CA.
    cas, _ = _ensure_cas(config, layout, create=bool(csrs or sa_key))
    issued = {}
    if csrs:
        issued = kubesalt_core.certificates.sign_requests(
            config, requester, csrs, cas, config["pki"]["leaf_days"], _now()
        )
    if sa_key:
        _register(config, layout, requester, sa_key)
    sealed = None
    if sealing_key:
        keys = _load_encryption_keys(layout, create=True)
        sealed = kubesalt_core.encryption.seal({"keys": keys}, sealing_key)
    answer = _public(config, layout, cas)
    _keep_mine_current(answer)
    answer["certificates"] = {
        name: kubesalt_core.certificates.cert_pem(c).decode() for name, c in issued.items()
    }
    if sealed is not None:
        answer["encryption"] = sealed
    return answer


def _key_name():
    return "key-" + _now().strftime("%Y%m%dT%H%M%S%fZ")


def _read_encryption_keys(layout):
    try:
        with open(layout.encryption_keys, encoding="utf-8") as handle:
            return json.load(handle)["keys"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        raise CommandExecutionError(
            f"{layout.encryption_keys} is not a kubesalt key set ({err}); kubesalt will not "
            "replace it: the Secrets in etcd may need it"
        ) from err


def _write_encryption_keys(layout, keys):
    kubesalt_core.files.write_atomically(
        layout.encryption_keys, json.dumps({"keys": keys}, indent=1) + "\n", 0o600
    )


def _load_encryption_keys(layout, create):
    """The key set (made, with one writing key, when there is none and ``create``)."""
    keys = _read_encryption_keys(layout)
    if keys is None and create:
        with _ca_lock(layout):
            keys = _read_encryption_keys(layout)
            if keys is None:
                keys = kubesalt_core.encryption.first_set(_key_name())
                _write_encryption_keys(layout, keys)
                log.info("kubesalt_ca: made the encryption key %s", keys[0]["name"])
    return keys


def _public(config, layout, cas):
    keys = _read_encryption_keys(layout) or []
    return {
        "cas": {
            name: kubesalt_core.certificates.cert_pem(cert).decode()
            for name, (cert, _) in cas.items()
        },
        "service_account_keys": _registry(config, layout),
        "encryption_keys": kubesalt_core.encryption.names(keys),
    }


def _keep_mine_current(public_answer):
    """Send :func:`public` to the mine when what the mine holds for this host differs."""
    if "mine.get" not in __salt__:
        return
    me = __opts__["id"]
    entry = kubesalt_core.pki.CA_MINE_FUNCTION
    try:
        held = (__salt__["mine.get"](me, entry, tgt_type="list") or {}).get(me)
        sent = held == public_answer or __salt__["mine.send"](entry)
    except SaltException as err:
        sent = err
    if sent is not True:
        # The nodes then ask this host on their runs, as they do without a mine entry.
        log.warning("kubesalt_ca: could not send %s to the mine: %s", entry, sent)


def public():
    """
    The CA host's public answer: ``{"cas": {name: PEM}, "service_account_keys": {master:
    PEM}}``, the CA certificates and the registered service-account public keys. Nothing is
    created. The CA host keeps it in the Salt mine (see the module's docstring); nodes read
    it with ``mine.get <ca_host> kubesalt_ca.public``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.public
        salt worker-1 mine.get master-1 kubesalt_ca.public
    """
    config = _config()
    _require_ca_host(config)
    layout = kubesalt_core.pki.Layout.of(config)
    return _public(config, layout, _ensure_cas(config, layout, create=False)[0])


def sign(request=None, **kwargs):
    """
    Sign a node's CSRs: run on the CA host by a node's peer publication, never by hand.

    The requester is the minion id the salt-master authenticated (``__pub_id``, supplied by
    Salt); it cannot be passed as an argument. Returns ``{"cas": {...}, "certificates":
    {...}, "service_account_keys": {...}}`` (PEM strings) or ``{"error": "..."}``.

    request
        ``{"certificates": {catalogue name: CSR PEM}, "service_account_key": PEM}``; both
        optional. Without either, the answer only carries the public CA certificates and
        service-account keys, and no CA is created.

    CLI Example (what a node's ``kubesalt_pki.issue`` does for you):

    .. code-block:: bash

        salt-call publish.publish master-1 kubesalt_ca.sign '[{"certificates": {}}]'
    """
    requester = kwargs.get("__pub_id")
    if not requester:
        return {
            "error": "kubesalt_ca.sign answers only a node's peer publication (publish.publish), "
            "which carries the caller's authenticated minion id; it takes no requester "
            "argument. Run kubesalt_pki.issue on the node instead."
        }
    if request is not None and not isinstance(request, dict):
        return {"error": f"request must be a mapping, got {type(request).__name__}"}
    try:
        return _answer(requester, request or {})
    except (
        kubesalt_core.errors.SigningRefused,
        CommandExecutionError,
        ValueError,
        TypeError,
    ) as err:
        log.warning("kubesalt_ca.sign refused %s: %s", requester, err)
        return {"error": str(err)}


def rotate_ca(ca):
    """
    Move a CA aside (``<ca>.<UTC time>.crt/.key`` in ``ca_dir``) on the CA host, so that
    the next run creates a new one and every certificate it signed is re-issued.

    Nothing is deleted. Until every node has run again, components holding certificates of
    the old CA and those of the new one do not trust each other: rotate in a maintenance
    window, then run a highstate on all nodes and restart their components.

    ca
        One of ``kubernetes-ca``, ``etcd-ca``, ``front-proxy-ca``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.rotate_ca etcd-ca
    """
    if ca not in kubesalt_core.pki.CAS:
        raise SaltInvocationError(
            f"Invalid value {ca!r} for ca. Valid: {', '.join(kubesalt_core.pki.CAS)}"
        )
    config = _config()
    _require_ca_host(config)
    layout = kubesalt_core.pki.Layout.of(config)
    stamp = _now().strftime("%Y%m%dT%H%M%SZ")
    moved = {}
    with _ca_lock(layout):
        for path in (layout.ca_cert(ca), layout.ca_key(ca)):
            if os.path.exists(path):
                stem, ext = os.path.splitext(path)
                target = f"{stem}.{stamp}{ext}"
                os.rename(path, target)
                moved[path] = target
    if not moved:
        raise CommandExecutionError(f"CA {ca} does not exist in {layout.ca_dir}")
    return moved


def _changed_keys(change):
    """Apply ``change`` (key set -> (new set, result)) under the CA lock; the mine follows."""
    config = _config()
    _require_ca_host(config)
    layout = kubesalt_core.pki.Layout.of(config)
    with _ca_lock(layout):
        keys = _read_encryption_keys(layout)
        if keys is None:
            raise CommandExecutionError(
                f"there is no encryption key set in {layout.encryption_keys} yet: a highstate "
                "of the masters makes it"
            )
        changed, result = change(keys)
        if changed != keys:
            _write_encryption_keys(layout, changed)
    cas = _ensure_cas(config, layout, create=False)[0]
    _keep_mine_current(_public(config, layout, cas))
    return changed, result


def encryption_keys():
    """
    The keys Secrets are encrypted with, in the order the apiservers use them: name and
    state (``write``, ``staged``, ``old``); never the keys themselves.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.encryption_keys
    """
    config = _config()
    _require_ca_host(config)
    keys = _read_encryption_keys(kubesalt_core.pki.Layout.of(config)) or []
    return [
        {"name": k["name"], "state": k["state"]} for k in kubesalt_core.encryption.ordered(keys)
    ]


def encryption_key_stage(key=None):
    """
    Step 1 of a rotation: add a new key that every apiserver reads with, and none writes
    with yet. A key staged before (a rotation stopped half-way) is kept instead.

    key
        The new key, base64 of 32 random bytes (``head -c 32 /dev/urandom | base64``);
        default: made here from the operating system's random source.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.encryption_key_stage
    """
    if key is not None:
        problem = kubesalt_core.encryption.key_problem(key)
        if problem:
            raise SaltInvocationError(f"Invalid value for key: {problem}")
    entry = kubesalt_core.encryption.new_key(_key_name(), key)
    _, staged = _changed_keys(lambda keys: kubesalt_core.encryption.stage(keys, entry))
    return {"staged": staged["name"], "new": staged["name"] == entry["name"]}


def encryption_key_promote():
    """
    Step 2 of a rotation: the staged key writes, the key that wrote turns old (read only).
    Run it once every apiserver holds the staged key.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.encryption_key_promote
    """
    _, promoted = _changed_keys(kubesalt_core.encryption.promote)
    return {"promoted": promoted}


def encryption_key_retire(stored=None):
    """
    Last step of a rotation: drop the old keys. Refused while a Secret in etcd is still
    encrypted with one of them (``kubesalt_encryption.rewrite_secrets`` rewrites them all).

    stored
        What the Secrets in etcd are stored with, ``{"aescbc:<key>": count, "plain":
        count}``; default: read from this host's etcd member (``kubesalt_encryption.stored``).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_ca.encryption_key_retire
    """
    if stored is None:
        stored = __salt__["kubesalt_encryption.stored"]()

    def retire(keys):
        old = {k["name"] for k in keys if k["state"] == "old"}
        still = sorted(
            f"{count} Secret(s) with {what}"
            for what, count in stored.items()
            if what.partition(":")[2] in old and count
        )
        if still:
            raise CommandExecutionError(
                f"not retiring {', '.join(sorted(old))}: {', '.join(still)} (run "
                "kubesalt_encryption.rewrite_secrets on a master first)"
            )
        return kubesalt_core.encryption.retire(keys)

    _, removed = _changed_keys(retire)
    return {"retired": removed}
