"""
kubesalt_pki: the cluster's certificates, issued by kubesalt's own CAs.

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
    (``publish.publish <ca_host> kubesalt_ca.sign``). The salt-master accepts a peer
    publication only from an authenticated minion and puts that minion's id into the job;
    the CA host's minion hands it to :func:`sign` as ``__pub_id``, after (and over) any
    argument the caller passed, so a caller cannot choose it. :func:`sign` takes the
    requester's roles and addresses from the CA host's own pillar, builds each certificate
    from the catalogue for *that* id, and uses nothing from a CSR but its public key (after
    checking the CSR's signature, which proves the requester holds the private key). A job
    that the master itself published carries no ``__pub_id`` and is refused, so there is
    no argument through which anyone names the identity to sign. The master's ``peer``
    configuration (``conf/master.d/kubesalt.conf``) must allow ``kubesalt_ca.sign`` and
    nothing else of this module.

Renewal
    :func:`issue` (and the state ``kubesalt_pki.certificates_present``) re-issues only for the
    reasons above; a run over valid certificates changes nothing. It checks them against the
    CA host's public answer (its CA certificates and the registered service-account keys)
    as the CA host last sent it to the Salt mine (``kubesalt_ca.public``), and asks the CA
    host itself only when that shows something to do, or there is no mine entry: most runs
    publish nothing. A renewal keeps the node's key; a new key is made
    only when the key is missing or not of ``pki:key_type``.

CLI Example:

.. code-block:: bash

    salt '*' kubesalt_pki.plan
    salt '*' kubesalt_pki.expiring days=60
"""

import datetime
import logging
import os
import time

import salt.utils.yaml

# cryptography comes with Salt (a requirement of it since 3006), so it is imported plainly.
from cryptography import x509
from salt.exceptions import CommandExecutionError, SaltException, SaltInvocationError

import kubesalt_core.certificates
import kubesalt_core.files
import kubesalt_core.pem
import kubesalt_core.pillar
import kubesalt_core.pki

log = logging.getLogger(__name__)

__virtual_aliases__ = ("k8s_pki",)  # before 0.2 (README, "Module names")

# How long a node waits for the CA host to answer one request.
PUBLISH_TIMEOUT = 30
# How often a new master looks for the other masters' service-account keys.
REGISTRY_POLL_SECONDS = 2


# --- helpers ---------------------------------------------------------------------------------


def _now():
    return datetime.datetime.now(datetime.UTC)


def _config():
    return __salt__["kubesalt.config"]()


def _identity():
    config = _config()
    me = __opts__["id"]
    roles = kubesalt_core.pillar.roles_of(config, me)
    return config, me, roles


# --- the node side ----------------------------------------------------------------------------


def _ask_ca(config, request, silent_ok=False):
    """Send ``request`` to the CA host and return its answer, or raise with the reason
    (``silent_ok``: None when the CA host does not answer at all)."""
    host = kubesalt_core.pki.ca_host(config)
    me = __opts__["id"]
    if me == host:
        # The CA host asks itself: its own id is the requester, no publication needed.
        answer = __salt__["kubesalt_ca.sign"](request, __pub_id=me)
    else:
        replies = __salt__["publish.publish"](
            host, "kubesalt_ca.sign", arg=[request], timeout=PUBLISH_TIMEOUT
        )
        answer = (replies or {}).get(host)
    if not answer and silent_ok:
        return None
    if not answer:
        raise CommandExecutionError(
            f"the CA host {host} did not answer kubesalt_ca.sign within {PUBLISH_TIMEOUT} s: is "
            "its minion up, and does the master's peer configuration allow kubesalt_ca.sign "
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
        i.name: (
            kubesalt_core.pem.private_key(layout.key(i.name)),
            kubesalt_core.pem.certificate(layout.cert(i.name)),
        )
        for i in identities
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
        reason, new_key = kubesalt_core.certificates.certificate_plan(
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
        current, have = cas.get(ca), kubesalt_core.pem.read(layout.trusted_ca(ca))
        if current is None or have != kubesalt_core.certificates.cert_pem(current):
            name = os.path.basename(layout.trusted_ca(ca))
            trust[name] = "created" if have is None else "updated"
    plan = {"issue": issue, "new_keys": new_keys, "trust": trust}
    if kubesalt_core.pki.holds_service_account_key(roles):
        sa_key = kubesalt_core.pem.private_key(layout.service_account_key)
        if sa_key is None:
            plan["service_account_key"] = "generated"
            mine = None
        else:
            mine = kubesalt_core.certificates.public_pem(sa_key).decode()
            if registered.get(me) != mine:
                plan["service_account_key"] = "registered"
        expected = dict(registered)
        expected[me] = mine or "(new key)"
        if mine is None or kubesalt_core.pem.read(layout.service_account_bundle) != _bundle(
            expected
        ):
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
        reason = kubesalt_core.certificates.reissue_reason(
            identity, cert, keys[name].public_key(), cas[identity.ca], _now(), 0
        )
        if reason:
            raise CommandExecutionError(
                f"the certificate the CA host returned for {name} is unusable ({reason}); "
                "are the CA host's pillar and this node's the same?"
            )


def _planned():
    """What this node's certificates need, from its files and the CA host's answer: a
    finished answer (nothing to plan, or the CA host is down), or the plan with what a run
    works from."""
    config, me, roles = _identity()
    layout = kubesalt_core.pki.Layout.of(config)
    identities = kubesalt_core.pki.node_identities(config, me, roles)
    if not identities and not kubesalt_core.pki.holds_service_account_key(roles):
        return {"changes": {}, "comment": f"{me} holds no certificates (roles: {roles})"}, None
    published = _from_mine(config, me)
    if published is not None:
        plan = _plan(config, me, roles, layout, published)
        if not _changes(plan):
            return None, (config, me, roles, layout, identities, published, plan)
    # Something to do (or no mine entry): the CA host's own answer, fresh.
    answer = _ask_ca(config, {}, silent_ok=True)
    if answer is None:
        return _without_ca(config, me, roles, layout), None
    plan = _plan(config, me, roles, layout, answer)
    return None, (config, me, roles, layout, identities, answer, plan)


def _from_mine(config, me):
    """The CA host's public answer as it last sent it to the mine (``kubesalt_ca.public``),
    or None: on the CA host itself, without a mine or without an entry. It only tells that
    nothing is to be done; anything else is asked of the CA host."""
    host = kubesalt_core.pki.ca_host(config)
    if me == host or "mine.get" not in __salt__:
        return None
    entry = kubesalt_core.pki.CA_MINE_FUNCTION
    try:
        held = __salt__["mine.get"](host, entry, tgt_type="list") or {}
    except SaltException as err:
        log.info("kubesalt_pki: no mine answer (%s); asking the CA host", err)
        return None
    answer = held.get(host) if isinstance(held, dict) else None
    if not isinstance(answer, dict) or not isinstance(answer.get("cas"), dict):
        return None
    return answer


def ca_answer(request=None, mine=False):
    """
    The CA host's answer to ``request`` (see ``kubesalt_ca.sign``): ``{"cas", "certificates",
    "service_account_keys", "encryption_keys", ...}``. With ``mine``, its public part as the
    CA host last sent it to the Salt mine when there is one (nothing is published then).
    None when the CA host does not answer.

    CLI Example:

    .. code-block:: bash

        salt master-2 kubesalt_pki.ca_answer mine=True
    """
    config = _config()
    if mine and not request:
        published = _from_mine(config, __opts__["id"])
        if published is not None:
            return published
    return _ask_ca(config, request or {}, silent_ok=True)


def plan():
    """
    What :func:`issue` would do on this node, and why; nothing is written and no CA is
    created (what ``state.apply kubesalt.pki test=True`` shows).

    Returns ``{"changes": {...}, "comment": "..."}`` in the shape :func:`issue` returns.

    CLI Example:

    .. code-block:: bash

        salt 'worker-1' kubesalt_pki.plan
    """
    finished, work = _planned()
    if finished is not None:
        return finished
    changes = _changes(work[-1])
    return {"changes": changes, "comment": _comment(changes, test=True)}


def issue():
    """
    Bring this node's certificates in line with the catalogue: (re)issue exactly those that
    need it, and say why (:func:`plan` says it without doing it).

    Returns ``{"changes": {...}, "comment": "..."}``. ``changes`` has ``issued`` (name ->
    reason), ``new keys``, ``ca certificates`` (local copies written), and on masters
    ``service-account key`` / ``service-account bundle``; it is empty when everything is
    valid.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_pki.issue
    """
    finished, work = _planned()
    if finished is not None:
        return finished
    config, me, roles, layout, identities, answer, plan = work
    changes = _changes(plan)
    if not changes:
        return {"changes": changes, "comment": _comment(changes, test=False)}

    # Keys stay in memory until their certificates are back: a failed request leaves the
    # node's files exactly as they were.
    keys, csrs = {}, {}
    for name in plan["issue"]:
        key = (
            kubesalt_core.certificates.new_private_key(config["pki"]["key_type"])
            if name in plan["new_keys"]
            else kubesalt_core.pem.private_key(layout.key(name))
        )
        keys[name] = key
        csrs[name] = kubesalt_core.certificates.cert_pem(
            kubesalt_core.certificates.build_csr(key, name)
        ).decode()
    request = {"certificates": csrs} if csrs else {}
    sa_key = None
    if "service_account_key" in plan:
        sa_key = kubesalt_core.pem.private_key(
            layout.service_account_key
        ) or kubesalt_core.certificates.new_private_key(config["pki"]["key_type"])
        request["service_account_key"] = kubesalt_core.certificates.public_pem(sa_key).decode()
    if request:
        answer = _ask_ca(config, request)
    cas, certs, registered = _parse_answer(answer)
    _verify_issued(plan, identities, keys, cas, certs)
    if sa_key is not None:
        registered = _wait_for_masters(config, me, registered)

    for ca in kubesalt_core.pki.trusted_cas(identities):
        kubesalt_core.files.write_atomically(
            layout.trusted_ca(ca), kubesalt_core.certificates.cert_pem(cas[ca]), 0o644
        )
    for name in plan["issue"]:
        if name in plan["new_keys"]:
            kubesalt_core.files.write_atomically(
                layout.key(name), kubesalt_core.certificates.key_pem(keys[name]), 0o600
            )
        kubesalt_core.files.write_atomically(
            layout.cert(name), kubesalt_core.certificates.cert_pem(certs[name]), 0o644
        )
    if plan.get("service_account_key") == "generated":
        kubesalt_core.files.write_atomically(
            layout.service_account_key, kubesalt_core.certificates.key_pem(sa_key), 0o600
        )
    if kubesalt_core.pki.holds_service_account_key(roles):
        # What was written, which can hold more masters than the plan foresaw (others
        # registered while this run waited).
        bundle = _bundle(registered)
        changes.pop("service-account bundle", None)
        if kubesalt_core.pem.read(layout.service_account_bundle) != bundle:
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
        ca: kubesalt_core.pem.certificate(layout.trusted_ca(ca))
        for ca in kubesalt_core.pki.trusted_cas(identities)
    }
    missing = sorted(ca for ca, cert in cas.items() if cert is None)
    if missing:
        raise CommandExecutionError(
            f"{silent}, and this node holds no copy of {', '.join(missing)}: its certificates "
            "wait for the CA host"
        )
    waiting, blocked = kubesalt_core.certificates.without_ca_plan(
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

        salt '*' kubesalt_pki.status
    """
    config, me, roles = _identity()
    layout = kubesalt_core.pki.Layout.of(config)
    now = _now()
    report = {}
    for name, path in _held_certificates(config, me, roles, layout).items():
        cert = kubesalt_core.pem.certificate(path)
        if cert is None:
            report[name] = {"path": path, "missing": True}
            continue
        report[name] = {
            "path": path,
            "not_after": cert.not_valid_after_utc.isoformat(),
            "days_left": kubesalt_core.certificates.days_left(cert, now),
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

        salt '*' kubesalt_pki.expiring days=60
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

        salt 'master-1' kubesalt_pki.kubeconfigs
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

        salt '*' kubesalt_pki.is_ca_host
    """
    return __opts__["id"] == kubesalt_core.pki.ca_host(_config())
