"""
k8s_pki: the cluster's certificates, issued by kubesalt's own CAs.

What is issued
    Every certificate of the catalogue (``_utils/kubesalt_core/pki.py``, one record per cert:
    CA, CN, O, usages, SAN rule) for the roles pillar gives a node; the kubernetes, etcd and
    front-proxy CAs on the CA host; on every master a service-account signing key pair;
    kubeconfigs for admin, scheduler, controller-manager, kubelet and kube-proxy.

Where keys live
    CA private keys: only on the CA host (``pki:ca_host``, else the first master by minion
    id), under ``paths:ca_dir`` (0700; keys 0600). They are created there and never read by
    anything but the signing code on that host: they are not in pillar, mine, events, job
    returns or file_roots. Node private keys (and each master's service-account key) are
    made on the node itself (ECDSA P-256 by default, ``pki:key_type`` for RSA), written
    0600 under ``paths:pki_dir``, and never leave it: only CSRs and public keys travel.

How a node gets a certificate, and why it cannot get another node's
    The node decides *what* it needs (missing, not signed by the current CA, not matching
    its key, differing from the catalogue, expiring within ``pki:renew_before_days``) and
    sends one CSR per certificate to the CA host with Salt's peer publish
    (``publish.publish <ca_host> k8s_pki.sign``). The salt-master accepts a peer
    publication only from an authenticated minion and puts that minion's id into the job;
    the CA host's minion hands it to :func:`sign` as ``__pub_id``, after (and over) any
    argument the caller passed, so a caller cannot choose it. :func:`sign` takes the
    requester's roles and addresses from the CA host's own pillar, builds each certificate
    from the catalogue for *that* id, and uses nothing from a CSR but its public key (after
    checking the CSR's signature, which proves the requester holds the private key). A job
    that the master itself published carries no ``__pub_id`` and is refused, so there is
    no argument through which anyone names the identity to sign. The master's ``peer``
    configuration (``conf/master.d/kubesalt.conf``) must allow ``k8s_pki.sign`` and
    nothing else of this module.

Renewal
    :func:`issue` (and the state ``k8s_pki.certificates_present``) re-issues only for the
    reasons above; a run over valid certificates asks the CA host for its public CA
    certificates and changes nothing. A renewal keeps the node's key; a new key is made
    only when the key is missing or not of ``pki:key_type``.

CLI Example:

.. code-block:: bash

    salt '*' k8s_pki.issue test=True
    salt '*' k8s_pki.expiring days=60
"""

import contextlib
import datetime
import fcntl
import logging
import os
import time

import salt.utils.yaml

# cryptography comes with Salt (a requirement of it since 3006), so it is imported plainly.
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.files
import kubesalt_core.pillar
import kubesalt_core.pki

log = logging.getLogger(__name__)

__virtualname__ = "k8s_pki"

# How long a node waits for the CA host to answer one request.
PUBLISH_TIMEOUT = 30
# How often a new master looks for the other masters' service-account keys.
REGISTRY_POLL_SECONDS = 2


def __virtual__():
    return __virtualname__


# --- small I/O helpers ----------------------------------------------------------------------


def _now():
    return datetime.datetime.now(datetime.UTC)


def _config():
    return __salt__["kubesalt.config"]()


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _load(path, parse):
    """Parse the PEM file at ``path``; None when it is missing or unreadable as PEM."""
    data = _read(path)
    if data is None:
        return None
    try:
        return parse(data)
    except ValueError:
        log.warning("k8s_pki: %s is not valid PEM; treating it as missing", path)
        return None


def _load_cert(path):
    return _load(path, x509.load_pem_x509_certificate)


def _load_key(path):
    return _load(path, lambda data: serialization.load_pem_private_key(data, password=None))


def _identity():
    config = _config()
    me = __opts__["id"]
    roles = kubesalt_core.pillar.roles_of(config, me)
    return config, me, roles


# --- the CA host ------------------------------------------------------------------------------


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
        cert, key = _load_cert(layout.ca_cert(name)), _load_key(layout.ca_key(name))
        if cert is None and key is None:
            continue
        if cert is None or key is None:
            missing = layout.ca_cert(name) if cert is None else layout.ca_key(name)
            raise CommandExecutionError(
                f"CA {name} is incomplete: {missing} is missing or unreadable. kubesalt "
                "will not replace half a CA; restore it, or move both files aside to "
                "create a new CA (see k8s_pki.rotate_ca)"
            )
        if not kubesalt_core.pki.same_public_key(cert.public_key(), key.public_key()):
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
                key = kubesalt_core.pki.new_private_key(pki["key_type"])
                cert = kubesalt_core.pki.build_ca(name, key, pki["ca_days"], _now())
                kubesalt_core.files.write_atomically(
                    layout.ca_key(name), kubesalt_core.pki.key_pem(key), 0o600
                )
                kubesalt_core.files.write_atomically(
                    layout.ca_cert(name), kubesalt_core.pki.cert_pem(cert), 0o644
                )
                cas[name] = (cert, key)
                created.append(name)
                log.info("k8s_pki: created CA %s in %s", name, layout.ca_dir)
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

        salt master-1 k8s_pki.ca_init
    """
    config = _config()
    _require_ca_host(config)
    return _ensure_cas(config, kubesalt_core.pki.Layout.of(config), create=True)[1]


def ca_missing():
    """
    Return the CAs the CA host does not have yet (what :func:`ca_init` would create).

    CLI Example:

    .. code-block:: bash

        salt master-1 k8s_pki.ca_missing
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
            pem = _read(os.path.join(layout.registry_dir, f"{mid}.pub"))
            if pem is not None:
                keys[mid] = pem.decode()
    return keys


def _register(config, layout, requester, public_key_pem):
    node = config["nodes"][requester]
    if not kubesalt_core.pki.holds_service_account_key(node.get("roles") or []):
        raise kubesalt_core.pki.SigningRefused(
            f"{requester!r} is not a master; it has no service-account key"
        )
    key = serialization.load_pem_public_key(public_key_pem.encode())
    path = os.path.join(layout.registry_dir, f"{requester}.pub")
    pem = kubesalt_core.pki.public_pem(key)
    if _read(path) != pem:
        with _ca_lock(layout):
            os.makedirs(layout.registry_dir, mode=0o700, exist_ok=True)
            kubesalt_core.files.write_atomically(path, pem, 0o644)


def _answer(requester, request):
    """The CA host's reply to an authenticated ``requester``; see :func:`sign`."""
    config = _config()
    _require_ca_host(config)
    layout = kubesalt_core.pki.Layout.of(config)
    if requester not in (config.get("nodes") or {}):
        raise kubesalt_core.pki.SigningRefused(f"{requester!r} is not a node under kubesalt:nodes")
    wanted = request.get("certificates") or {}
    sa_key = request.get("service_account_key")
    if not isinstance(wanted, dict) or not (sa_key is None or isinstance(sa_key, str)):
        raise kubesalt_core.pki.SigningRefused(
            "request must be {certificates: {name: CSR PEM}, service_account_key: PEM}"
        )
    csrs = {}
    for name, pem in wanted.items():
        try:
            csrs[name] = x509.load_pem_x509_csr(pem.encode())
        except (ValueError, AttributeError) as err:
            raise kubesalt_core.pki.SigningRefused(
                f"the CSR for {name!r} is not a PEM CSR"
            ) from err
    # A read-only question (test=True, or nothing to issue) never creates a CA.
    cas, _ = _ensure_cas(config, layout, create=bool(csrs or sa_key))
    issued = {}
    if csrs:
        issued = kubesalt_core.pki.sign_requests(
            config, requester, csrs, cas, config["pki"]["leaf_days"], _now()
        )
    if sa_key:
        _register(config, layout, requester, sa_key)
    return {
        "cas": {name: kubesalt_core.pki.cert_pem(cert).decode() for name, (cert, _) in cas.items()},
        "certificates": {
            name: kubesalt_core.pki.cert_pem(c).decode() for name, c in issued.items()
        },
        "service_account_keys": _registry(config, layout),
    }


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

    CLI Example (what a node's ``k8s_pki.issue`` does for you):

    .. code-block:: bash

        salt-call publish.publish master-1 k8s_pki.sign '[{"certificates": {}}]'
    """
    requester = kwargs.get("__pub_id")
    if not requester:
        return {
            "error": "k8s_pki.sign answers only a node's peer publication (publish.publish), "
            "which carries the caller's authenticated minion id; it takes no requester "
            "argument. Run k8s_pki.issue on the node instead."
        }
    if request is not None and not isinstance(request, dict):
        return {"error": f"request must be a mapping, got {type(request).__name__}"}
    try:
        return _answer(requester, request or {})
    except (kubesalt_core.pki.SigningRefused, CommandExecutionError, ValueError, TypeError) as err:
        log.warning("k8s_pki.sign refused %s: %s", requester, err)
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

        salt master-1 k8s_pki.rotate_ca etcd-ca
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


# --- the node side ----------------------------------------------------------------------------


def _ask_ca(config, request, silent_ok=False):
    """Send ``request`` to the CA host and return its answer, or raise with the reason
    (``silent_ok``: None when the CA host does not answer at all)."""
    host = kubesalt_core.pki.ca_host(config)
    me = __opts__["id"]
    if me == host:
        # The CA host asks itself: its own id is the requester, no publication needed.
        try:
            return _answer(me, request)
        except kubesalt_core.pki.SigningRefused as err:
            raise CommandExecutionError(f"CA host {host}: {err}") from err
    replies = __salt__["publish.publish"](
        host, "k8s_pki.sign", arg=[request], timeout=PUBLISH_TIMEOUT
    )
    answer = (replies or {}).get(host)
    if not answer and silent_ok:
        return None
    if not answer:
        raise CommandExecutionError(
            f"the CA host {host} did not answer k8s_pki.sign within {PUBLISH_TIMEOUT} s: is "
            "its minion up, and does the master's peer configuration allow k8s_pki.sign "
            "(conf/master.d/kubesalt.conf)?"
        )
    if not isinstance(answer, dict):
        raise CommandExecutionError(f"CA host {host}: {answer}")
    if "error" in answer:
        raise CommandExecutionError(f"CA host {host}: {answer['error']}")
    return answer


def _parse_answer(answer):
    cas = {n: x509.load_pem_x509_certificate(p.encode()) for n, p in answer["cas"].items()}
    certs = {
        n: x509.load_pem_x509_certificate(p.encode())
        for n, p in (answer.get("certificates") or {}).items()
    }
    return cas, certs, answer.get("service_account_keys") or {}


def _bundle(keys):
    return "".join(keys[mid] for mid in sorted(keys)).encode()


def _local_state(config, me, roles, layout):
    identities = kubesalt_core.pki.node_identities(config, me, roles)
    held = {
        i.name: (_load_key(layout.key(i.name)), _load_cert(layout.cert(i.name))) for i in identities
    }
    return identities, held


def _plan(config, me, roles, layout, answer):
    """Every change a real run would make, from the node's files and the CA's answer."""
    now = _now()
    pki = config["pki"]
    cas, _, registered = _parse_answer(answer)
    identities, held = _local_state(config, me, roles, layout)
    issue, new_keys = {}, []
    for identity in identities:
        key, cert = held[identity.name]
        reason, new_key = kubesalt_core.pki.certificate_plan(
            identity,
            key,
            cert,
            cas.get(identity.ca),
            pki["key_type"],
            now,
            pki["renew_before_days"],
        )
        if reason:
            issue[identity.name] = reason
            if new_key:
                new_keys.append(identity.name)
    trust = {}
    for ca in kubesalt_core.pki.trusted_cas(identities):
        current, have = cas.get(ca), _read(layout.trusted_ca(ca))
        if current is None or have != kubesalt_core.pki.cert_pem(current):
            name = os.path.basename(layout.trusted_ca(ca))
            trust[name] = "created" if have is None else "updated"
    plan = {"issue": issue, "new_keys": new_keys, "trust": trust}
    if kubesalt_core.pki.holds_service_account_key(roles):
        sa_key = _load_key(layout.service_account_key)
        if sa_key is None:
            plan["service_account_key"] = "generated"
            mine = None
        else:
            mine = kubesalt_core.pki.public_pem(sa_key).decode()
            if registered.get(me) != mine:
                plan["service_account_key"] = "registered"
        expected = dict(registered)
        expected[me] = mine or "(new key)"
        if mine is None or _read(layout.service_account_bundle) != _bundle(expected):
            plan["service_account_bundle"] = sorted(expected)
    return plan


def _changes(plan):
    changes = {}
    if plan["issue"]:
        changes["issued"] = dict(plan["issue"])
    if plan["new_keys"]:
        changes["new keys"] = list(plan["new_keys"])
    if plan["trust"]:
        changes["ca certificates"] = dict(plan["trust"])
    if "service_account_key" in plan:
        changes["service-account key"] = plan["service_account_key"]
    if "service_account_bundle" in plan:
        changes["service-account bundle"] = plan["service_account_bundle"]
    return changes


def _wait_for_masters(config, me, registered):
    """A master that registered its key just now waits (``pki:service_account_wait_seconds``)
    for the other masters of pillar to register theirs, so that concurrent first runs write
    the same bundle everywhere. Returns the keys it saw last."""
    masters = {
        mid
        for mid, node in config["nodes"].items()
        if kubesalt_core.pki.holds_service_account_key(node.get("roles") or [])
    }
    deadline = time.monotonic() + config["pki"]["service_account_wait_seconds"]
    while not masters <= set(registered) and time.monotonic() < deadline:
        time.sleep(REGISTRY_POLL_SECONDS)
        registered = _parse_answer(_ask_ca(config, {}))[2]
    return registered


def _verify_issued(plan, identities, keys, cas, certs):
    by_name = {i.name: i for i in identities}
    for name in plan["issue"]:
        cert = certs.get(name)
        if cert is None:
            raise CommandExecutionError(f"the CA host returned no certificate for {name}")
        identity = by_name[name]
        reason = kubesalt_core.pki.reissue_reason(
            identity, cert, keys[name].public_key(), cas[identity.ca], _now(), 0
        )
        if reason:
            raise CommandExecutionError(
                f"the certificate the CA host returned for {name} is unusable ({reason}); "
                "are the CA host's pillar and this node's the same?"
            )


def issue(test=False):
    """
    Bring this node's certificates in line with the catalogue: (re)issue exactly those that
    need it, and say why.

    Returns ``{"changes": {...}, "comment": "..."}``. ``changes`` has ``issued`` (name ->
    reason), ``new keys``, ``ca certificates`` (local copies written), and on masters
    ``service-account key`` / ``service-account bundle``; it is empty when everything is
    valid. With ``test=True`` nothing is written and no CA is created: the result is what a
    real run would do.

    test
        Only report. Default: False.

    CLI Example:

    .. code-block:: bash

        salt 'worker-1' k8s_pki.issue test=True
        salt '*' k8s_pki.issue
    """
    config, me, roles = _identity()
    layout = kubesalt_core.pki.Layout.of(config)
    identities = kubesalt_core.pki.node_identities(config, me, roles)
    if not identities and not kubesalt_core.pki.holds_service_account_key(roles):
        return {"changes": {}, "comment": f"{me} holds no certificates (roles: {roles})"}
    answer = _ask_ca(config, {}, silent_ok=True)
    if answer is None:
        return _without_ca(config, me, roles, layout)
    plan = _plan(config, me, roles, layout, answer)
    changes = _changes(plan)
    if test or not changes:
        return {"changes": changes, "comment": _comment(changes, test)}

    # Keys stay in memory until their certificates are back: a failed request leaves the
    # node's files exactly as they were.
    keys, csrs = {}, {}
    for name in plan["issue"]:
        key = (
            kubesalt_core.pki.new_private_key(config["pki"]["key_type"])
            if name in plan["new_keys"]
            else _load_key(layout.key(name))
        )
        keys[name] = key
        csrs[name] = kubesalt_core.pki.cert_pem(kubesalt_core.pki.build_csr(key, name)).decode()
    request = {"certificates": csrs} if csrs else {}
    sa_key = None
    if "service_account_key" in plan:
        sa_key = _load_key(layout.service_account_key) or kubesalt_core.pki.new_private_key(
            config["pki"]["key_type"]
        )
        request["service_account_key"] = kubesalt_core.pki.public_pem(sa_key).decode()
    if request:
        answer = _ask_ca(config, request)
    cas, certs, registered = _parse_answer(answer)
    _verify_issued(plan, identities, keys, cas, certs)
    if sa_key is not None:
        registered = _wait_for_masters(config, me, registered)

    for ca in kubesalt_core.pki.trusted_cas(identities):
        kubesalt_core.files.write_atomically(
            layout.trusted_ca(ca), kubesalt_core.pki.cert_pem(cas[ca]), 0o644
        )
    for name in plan["issue"]:
        if name in plan["new_keys"]:
            kubesalt_core.files.write_atomically(
                layout.key(name), kubesalt_core.pki.key_pem(keys[name]), 0o600
            )
        kubesalt_core.files.write_atomically(
            layout.cert(name), kubesalt_core.pki.cert_pem(certs[name]), 0o644
        )
    if plan.get("service_account_key") == "generated":
        kubesalt_core.files.write_atomically(
            layout.service_account_key, kubesalt_core.pki.key_pem(sa_key), 0o600
        )
    if kubesalt_core.pki.holds_service_account_key(roles):
        # What was written, which can hold more masters than the plan foresaw (others
        # registered while this run waited).
        bundle = _bundle(registered)
        changes.pop("service-account bundle", None)
        if _read(layout.service_account_bundle) != bundle:
            kubesalt_core.files.write_atomically(layout.service_account_bundle, bundle, 0o644)
            changes["service-account bundle"] = sorted(registered)
    return {"changes": changes, "comment": _comment(changes, False)}


def _without_ca(config, me, roles, layout):
    """The CA host does not answer (its host is down): the node's certificates checked
    against its own copies of the CAs. A certificate that is still valid keeps working and
    its renewal waits (said in the comment); one that is missing, expired or not signed by
    the CA copy cannot be issued, and that fails the run."""
    host = kubesalt_core.pki.ca_host(config)
    silent = f"the CA host {host} does not answer (publish.publish within {PUBLISH_TIMEOUT} s)"
    identities, held = _local_state(config, me, roles, layout)
    cas = {
        ca: _load_cert(layout.trusted_ca(ca)) for ca in kubesalt_core.pki.trusted_cas(identities)
    }
    missing = sorted(ca for ca, cert in cas.items() if cert is None)
    if missing:
        raise CommandExecutionError(
            f"{silent}, and this node holds no copy of {', '.join(missing)}: its certificates "
            "wait for the CA host"
        )
    waiting, blocked = kubesalt_core.pki.without_ca_plan(
        identities, held, cas, config["pki"], _now()
    )
    if kubesalt_core.pki.holds_service_account_key(roles) and not os.path.exists(
        layout.service_account_key
    ):
        blocked["service-account key"] = "missing (the CA host keeps the registry)"
    if blocked:
        parts = ", ".join(f"{name} ({reason})" for name, reason in blocked.items())
        raise CommandExecutionError(f"{silent}; nothing was written: {parts} need it")
    if not waiting:
        return {"changes": {}, "comment": f"{silent}; every certificate is valid (checked "
                "against this node's copies of the CAs)"}  # fmt: skip
    parts = ", ".join(f"{name} ({reason})" for name, reason in waiting.items())
    return {
        "changes": {},
        "comment": f"{silent}; waiting for it to renew {parts}: each still works until then",
    }


def _comment(changes, test):
    if not changes:
        return "every certificate is valid and matches the catalogue"
    verb = "would issue" if test else "issued"
    parts = [f"{name} ({reason})" for name, reason in changes.get("issued", {}).items()]
    text = f"{verb} " + ", ".join(parts) if parts else ""
    extra = [k for k in changes if k != "issued"]
    if extra:
        text += (
            ("; " if text else "") + ("would update " if test else "updated ") + ", ".join(extra)
        )
    return text


# --- reporting ----------------------------------------------------------------------------


def _held_certificates(config, me, roles, layout):
    paths = {
        i.name: layout.cert(i.name) for i in kubesalt_core.pki.node_identities(config, me, roles)
    }
    if me == kubesalt_core.pki.ca_host(config):
        paths.update({name: layout.ca_cert(name) for name in kubesalt_core.pki.CAS})
    return paths


def status():
    """
    Every certificate this node should hold (and, on the CA host, the CAs): path, expiry,
    days left; ``missing`` when absent.

    CLI Example:

    .. code-block:: bash

        salt '*' k8s_pki.status
    """
    config, me, roles = _identity()
    layout = kubesalt_core.pki.Layout.of(config)
    now = _now()
    report = {}
    for name, path in _held_certificates(config, me, roles, layout).items():
        cert = _load_cert(path)
        if cert is None:
            report[name] = {"path": path, "missing": True}
            continue
        report[name] = {
            "path": path,
            "not_after": cert.not_valid_after_utc.isoformat(),
            "days_left": kubesalt_core.pki.days_left(cert, now),
        }
    return report


def expiring(days=30):
    """
    List this node's certificates (and, on the CA host, CAs) that expire within ``days``
    days, or are missing.

    days
        The horizon in days. Default: 30.

    CLI Example:

    .. code-block:: bash

        salt '*' k8s_pki.expiring days=60
    """
    try:
        days = int(days)
    except (TypeError, ValueError) as err:
        raise SaltInvocationError(f"days must be a whole number, got {days!r}") from err
    if days < 0:
        raise SaltInvocationError(f"days must be 0 or more, got {days}")
    return {
        name: entry
        for name, entry in status().items()
        if entry.get("missing") or entry["days_left"] < days
    }


def kubeconfigs():
    """
    The kubeconfigs this node's roles need: ``{name: {"path": ..., "contents": YAML}}``.
    They point at the certificate and key files; no key material is embedded.

    CLI Example:

    .. code-block:: bash

        salt 'master-1' k8s_pki.kubeconfigs
    """
    config, me, roles = _identity()
    layout = kubesalt_core.pki.Layout.of(config)
    return {
        spec.name: {
            "path": layout.kubeconfig(spec.name),
            "contents": salt.utils.yaml.safe_dump(
                kubesalt_core.pki.kubeconfig_document(config, me, spec, layout),
                default_flow_style=False,
            ),
        }
        for spec in kubesalt_core.pki.node_kubeconfigs(roles)
    }


def is_ca_host():
    """
    True on the minion that keeps the CAs.

    CLI Example:

    .. code-block:: bash

        salt '*' k8s_pki.is_ca_host
    """
    return __opts__["id"] == kubesalt_core.pki.ca_host(_config())
