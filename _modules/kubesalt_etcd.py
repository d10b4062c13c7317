"""
kubesalt_etcd: the masters' etcd cluster, over etcd's v3 JSON gateway.

Every call is an HTTPS POST with a client certificate; there is no etcd client library and
no parsing of etcdctl output. By default the module talks to every master's client URL
(``https://<ip>:2379``, from pillar) as ``kube-apiserver-etcd-client`` with the cert, key
and etcd CA that ``kubesalt_pki`` issued into ``paths:pki_dir``. Each function takes
``endpoints``, ``cert``, ``key`` and ``cacert`` to talk elsewhere.

etcd's errors become ``CommandExecutionError`` with what etcd said and what it means. The
conditions that pass by themselves (503 "unhealthy cluster" for about 5 s after a member
starts or is promoted, a learner not yet in sync, a leader election, an endpoint that does
not answer) are retried with backoff until ``timeout`` seconds have passed. etcd's strict
reconfiguration check stays on: kubesalt waits for it rather than turning it off.

Quorum rules: see ``_utils/kubesalt_core/etcd.py``. In short, members join as learners one at a
time and are promoted once etcd says they are in sync; a removal must leave a healthy
majority of the voting members it started from; the last member is never removed.

CLI Example:

.. code-block:: bash

    salt master-1 kubesalt_etcd.members
    salt master-1 kubesalt_etcd.status
    salt master-1 kubesalt_etcd.remove master-3
"""

import contextlib
import logging
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.errors
import kubesalt_core.etcd
import kubesalt_core.etcd_client
import kubesalt_core.pki

log = logging.getLogger(__name__)

__virtual_aliases__ = ("k8s_etcd",)  # before 0.2 (README, "Module names")

REQUEST_TIMEOUT = kubesalt_core.etcd_client.REQUEST_TIMEOUT
# How long a status probe of one member may take.
PROBE_TIMEOUT = kubesalt_core.etcd_client.PROBE_TIMEOUT


def _config():
    return __salt__["kubesalt.config"]()


def _split(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip() for v in value if v and v.strip()]


def _gateway(endpoints=None, cert=None, key=None, cacert=None, timeout=REQUEST_TIMEOUT):
    """A :class:`Gateway` from the arguments, filling the rest in from pillar."""
    endpoints = _split(endpoints)
    if not endpoints or not (cert and key and cacert):
        config = _config()
        layout = kubesalt_core.pki.Layout.of(config)
        endpoints = endpoints or kubesalt_core.etcd.master_endpoints(config)
        cert = cert or layout.cert("apiserver-etcd-client")
        key = key or layout.key("apiserver-etcd-client")
        cacert = cacert or layout.trusted_ca("etcd-ca")
    if not endpoints:
        raise SaltInvocationError("endpoints: no etcd client URL given and no master in pillar")
    try:
        return kubesalt_core.etcd_client.tls_gateway(endpoints, cert, key, cacert, timeout)
    except ValueError as err:
        raise CommandExecutionError(str(err)) from None


def _connection(kwargs):
    """Pull the connection arguments out of ``kwargs`` (Salt adds ``__pub_*`` keys too)."""
    names = ("endpoints", "cert", "key", "cacert")
    return {name: kwargs.get(name) for name in names}


@contextlib.contextmanager
def _salt_errors():
    """kubesalt_core's giving up, as Salt's error (once, here at the module's edge)."""
    try:
        yield
    except kubesalt_core.errors.GaveUp as err:
        raise CommandExecutionError(str(err)) from None


def _settled(gateway):
    with _salt_errors():
        return kubesalt_core.etcd_client.settled_status(gateway)


def _retrying(action, what, timeout):
    """:func:`kubesalt_core.etcd_client.retrying`, its giving up as Salt's error."""
    try:
        return kubesalt_core.etcd_client.retrying(action, what, timeout)
    except kubesalt_core.errors.GaveUp as err:
        raise CommandExecutionError(str(err)) from None


def _once(action, what):
    try:
        return kubesalt_core.etcd_client.once(action, what)
    except kubesalt_core.errors.GaveUp as err:
        raise CommandExecutionError(str(err)) from None


# --- reading --------------------------------------------------------------------------------


def members(**kwargs):
    """
    The cluster's members: id (a decimal string), name, peer and client URLs, learner flag.
    A member that was added but never started has an empty name.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.members
        salt master-1 kubesalt_etcd.members endpoints=https://127.0.0.1:2379
    """
    gateway = _gateway(**_connection(kwargs))
    return [
        m.as_dict()
        for m in _once(lambda: kubesalt_core.etcd_client.members(gateway), "listing members")
    ]


def status(**kwargs):
    """
    Every member's own status, each asked of that member: healthy (answers and sees a
    leader), whether it is the leader, raft index and term, database size, version.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.status
    """
    gateway = _gateway(**_connection(kwargs))
    return _once(lambda: kubesalt_core.etcd_client.status(gateway), "reading member status")[1]


def health(**kwargs):
    """
    A summary: voting members, how many are healthy, the quorum, the leader's name, and
    whether the cluster can lose another member.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.health
    """
    gateway = _gateway(**_connection(kwargs))
    members_, rows = _once(
        lambda: kubesalt_core.etcd_client.status(gateway), "reading member status"
    )
    voters = kubesalt_core.etcd.voting(members_)
    healthy = [r for r in rows if r["healthy"] and not r["is_learner"]]
    leaders = [r["name"] for r in rows if r["leader"]]
    needed = kubesalt_core.etcd.quorum(len(voters))
    return {
        "healthy": len(healthy) >= needed,
        "voting_members": len(voters),
        "healthy_voting_members": len(healthy),
        "learners": len(members_) - len(voters),
        "quorum": needed,
        "can_lose": max(len(healthy) - needed, 0),
        "leader": leaders[0] if leaders else None,
    }


def peer_links(**kwargs):
    """
    Whom each member has a working peer connection to, in its own view (etcd's
    ``etcd_network_active_peers`` from each member's ``/metrics``): ``{name: [names]}``,
    None for a member that did not answer. etcd approves a membership change only on a
    member connected to every voting member for 5 s.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.peer_links
    """
    gateway = _gateway(**_connection(kwargs))
    found = _once(lambda: kubesalt_core.etcd_client.members(gateway), "listing members")
    return kubesalt_core.etcd_client.peer_links(gateway, found)


def _changing(gateway, action, what, timeout, avoid=()):
    """:func:`kubesalt_core.etcd_client.changing`, its giving up as Salt's error."""
    try:
        return kubesalt_core.etcd_client.changing(gateway, action, what, timeout, avoid)
    except kubesalt_core.errors.GaveUp as err:
        raise CommandExecutionError(str(err)) from None


def leader(**kwargs):
    """
    The leader's name, or None while there is none.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.leader
    """
    return health(**kwargs)["leader"]


# --- changing -------------------------------------------------------------------------------


def _resolve(members_, member):
    """A member by name or id."""
    for candidate in members_:
        if str(member) in (candidate.name, candidate.id):
            return candidate
    return None


def add(name, peer_urls, learner=True, timeout=60, **kwargs):
    """
    Add a member (as a learner, by default) and return it with the ``initial_cluster`` its
    etcd must start with (``initial-cluster-state: existing``).

    Retries etcd's strict-reconfig 503 until ``timeout``. If an earlier attempt was cut
    short after etcd took it, the member already listed at ``peer_urls`` is returned.

    name
        The new member's name (its minion id).
    peer_urls
        Its peer URLs, a list or comma-separated.
    learner
        Add as a non-voting learner (default True); promote it once in sync.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.add master-4 https://198.18.0.14:2380
    """
    peer_urls = _split(peer_urls)
    if not peer_urls:
        raise SaltInvocationError("peer_urls: expected one or more https:// peer URLs")
    gateway = _gateway(**_connection(kwargs))

    def attempt():
        current = kubesalt_core.etcd_client.members(gateway)
        listed = kubesalt_core.etcd.find(current, peer_urls=peer_urls)
        if listed is None:
            body = {"peerURLs": peer_urls, "isLearner": bool(learner)}
            current = kubesalt_core.etcd.members_of(
                gateway.post(kubesalt_core.etcd.MEMBER_ADD, body)
            )
            listed = kubesalt_core.etcd.find(current, peer_urls=peer_urls)
        return current, listed

    current, listed = _changing(gateway, attempt, f"adding {name}", timeout)
    return {
        "member": listed.as_dict(),
        "initial_cluster": kubesalt_core.etcd.initial_cluster(current, name, peer_urls),
        "members": [m.as_dict() for m in current],
    }


def promote(member, timeout=120, **kwargs):
    """
    Promote a learner to a voting member once etcd says it is in sync with the leader
    (retried until ``timeout``). A member that already votes is left as it is.

    member
        Name or id.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.promote master-4
    """
    gateway = _gateway(**_connection(kwargs))

    def attempt():
        found = _resolve(kubesalt_core.etcd_client.members(gateway), member)
        if found is None:
            raise CommandExecutionError(f"promoting {member}: no such member")
        if not found.is_learner:
            return {"member": found.as_dict(), "promoted": False}
        gateway.post(kubesalt_core.etcd.MEMBER_PROMOTE, {"ID": found.id})
        return {"member": {**found.as_dict(), "is_learner": False}, "promoted": True}

    return _changing(gateway, attempt, f"promoting {member}", timeout)


def move_leader(target=None, timeout=30, **kwargs):
    """
    Make ``target`` the leader (or, without ``target``, the healthy voter furthest along
    other than the current leader), for maintenance on the leader's host. Returns the
    leader's name afterwards; raises when ``target`` is not a healthy voting member.

    target
        Name or id of a voting member.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.move_leader
        salt master-1 kubesalt_etcd.move_leader master-2
    """
    gateway = _gateway(**_connection(kwargs))

    def attempt():
        members_, rows = kubesalt_core.etcd_client.status(gateway)
        current = next((r for r in rows if r["leader"]), None)
        if current is None:
            raise kubesalt_core.errors.EtcdError(503, "no leader", kubesalt_core.etcd.STATUS)
        chosen = _next_leader(members_, rows, current, target)
        if chosen["id"] != current["id"]:
            gateway.post(
                kubesalt_core.etcd.MOVE_LEADER,
                {"targetID": chosen["id"]},
                endpoints=current["client_urls"],
            )
        return chosen["name"] or chosen["id"]

    return _retrying(attempt, "moving the leader", timeout)


def _next_leader(members_, rows, current, target):
    """The status row of the member that should lead: ``target``, or the successor."""
    if target is None:
        chosen = kubesalt_core.etcd.successor(rows, current["id"])
        if chosen is None:
            raise CommandExecutionError("no other healthy voting member can lead")
        return next(r for r in rows if r["id"] == chosen)
    found = _resolve(members_, target)
    row = next((r for r in rows if found is not None and r["id"] == found.id), None)
    if row is None or row["is_learner"] or not row["healthy"]:
        raise SaltInvocationError(
            f"target {target!r} must be a healthy voting member; members: "
            + ", ".join(m.name or m.id for m in members_)
        )
    return row


def removal_check(member, **kwargs):
    """
    Whether removing ``member`` keeps quorum now: ``{"safe": bool, "reason": str}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.removal_check master-3
    """
    return _removal_check(_gateway(**_connection(kwargs)), member)


def _removal_check(gateway, member):
    members_, rows = _settled(gateway)
    found = _resolve(members_, member)
    if found is None:
        return {"safe": True, "reason": f"{member} is not a member", "member": None}
    healthy = {r["id"] for r in rows if r["healthy"]}
    reason = kubesalt_core.etcd.removal_refusal(members_, healthy, found)
    successor = kubesalt_core.etcd.successor(rows, found.id)
    return {
        "safe": reason is None,
        "reason": reason or "quorum holds",
        "member": found.as_dict(),
        "successor": _name_of(rows, successor),
    }


def _name_of(rows, member_id):
    """``{"id", "name"}`` of the member with ``member_id`` among status rows, or None."""
    row = next((r for r in rows if r["id"] == member_id), None)
    return None if row is None else {"id": row["id"], "name": row["name"] or row["id"]}


def _hand_over(gateway, leaving, successor):
    """Make ``successor`` the leader before ``leaving`` (the leader now) goes away.

    Without this, removing or restarting the leader costs an election, about a second in
    which no write is acknowledged; with it, the leader steps down in about 0.1 s. The
    request must reach the leader itself. Returns the new leader's name, or None when
    nothing was handed over. A failed hand-over is logged and not fatal: quorum was
    checked before and holds either way.
    """
    if successor is None:
        return None
    try:
        gateway.post(
            kubesalt_core.etcd.MOVE_LEADER,
            {"targetID": successor["id"]},
            endpoints=leaving["client_urls"],
        )
    except kubesalt_core.errors.EtcdError as err:
        # 412 "not leader": an election moved it already; nothing left to hand over.
        log.warning("etcd: leadership of %s not handed over: %s", leaving["name"], err)
        return None
    except kubesalt_core.errors.Unreachable as err:
        log.warning("etcd: leader %s did not answer the hand-over: %s", leaving["name"], err)
        return None
    log.info("etcd: leadership handed from %s to %s", leaving["name"], successor["name"])
    return successor["name"]


def remove(member, timeout=60, **kwargs):
    """
    Remove a member, after checking that quorum holds without it (see the module
    docstring); raises when it would not. When the member is the leader, leadership is
    handed to the healthy voter furthest along first, so no election interrupts writes.
    Returns the removed member (``leader_moved_to`` names the new leader, if handed over),
    or None when it was not a member.

    member
        Name or id.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.remove master-3
    """
    gateway = _gateway(**_connection(kwargs))
    check = _removal_check(gateway, member)
    found = check["member"]
    if found is None:
        return None
    if not check["safe"]:
        raise CommandExecutionError(f"refusing to remove {member}: {check['reason']}")
    found["leader_moved_to"] = _hand_over(gateway, found, check["successor"])
    # Ask the other members first: the one leaving may go away under the request.
    gateway.endpoints.sort(key=lambda url: url in found["client_urls"])

    def attempt():
        if _resolve(kubesalt_core.etcd_client.members(gateway), found["id"]) is None:
            return found
        gateway.post(kubesalt_core.etcd.MEMBER_REMOVE, {"ID": found["id"]})
        return found

    return _changing(gateway, attempt, f"removing {member}", timeout, found["client_urls"])


def wait_ready(endpoint, timeout=60, **kwargs):
    """
    Wait until the member at client URL ``endpoint`` answers and sees a leader; return
    its status. Raises after ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt master-4 kubesalt_etcd.wait_ready https://198.18.0.14:2379
    """
    return _wait_ready(_gateway(**_connection(kwargs)), endpoint, timeout)


def _wait_ready(gateway, endpoint, timeout):
    def attempt():
        answer = gateway.post(
            kubesalt_core.etcd.STATUS, endpoints=[endpoint], timeout=PROBE_TIMEOUT
        )
        if str(answer.get("leader", "0")) == "0":
            raise kubesalt_core.errors.EtcdError(503, "no leader", kubesalt_core.etcd.STATUS)
        return answer

    return _retrying(attempt, f"waiting for {endpoint}", timeout)


def answers(endpoint, **kwargs):
    """
    Whether an etcd process serves at client URL ``endpoint``: any HTTP answer counts,
    even an error (before a leader is elected etcd answers but refuses most requests).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.answers https://198.18.0.11:2379
    """
    gateway = _gateway(**_connection(kwargs))
    try:
        gateway.post(kubesalt_core.etcd.STATUS, endpoints=[endpoint], timeout=PROBE_TIMEOUT)
    except kubesalt_core.errors.EtcdError:
        return True
    except kubesalt_core.errors.Unreachable:
        return False
    return True


def settings():
    """
    This master's etcd settings, from pillar: name, URLs, founders (every master), data
    dir, config and unit files, binary, TLS files. The etcd SLS renders from it.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.settings
    """
    config = _config()
    me = __opts__["id"]
    if me not in config["nodes"] or "master" not in config["nodes"][me]["roles"]:
        raise CommandExecutionError(f"{me} is not a master in pillar; etcd runs on masters")
    return kubesalt_core.etcd.node_settings(config, me, kubesalt_core.pki.Layout.of(config))


def live_cluster(**kwargs):
    """
    The live cluster as the endpoints see it right now: ``{"leader": bool, "members": [...],
    "answering": [...]}``. ``leader`` is True when any endpoint reports a leader; this, and
    never cached or mine data, decides whether a new cluster may be bootstrapped. Without
    a leader, ``members`` is what an answering member holds (empty when none answers).

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd.live_cluster
    """
    gateway = _gateway(**_connection(kwargs))
    answering, has_leader = [], False
    for endpoint in gateway.endpoints:
        try:
            answer = gateway.post(
                kubesalt_core.etcd.STATUS, endpoints=[endpoint], timeout=PROBE_TIMEOUT
            )
        except (kubesalt_core.errors.EtcdError, kubesalt_core.errors.Unreachable):
            continue
        answering.append(endpoint)
        has_leader = has_leader or str(answer.get("leader", "0")) != "0"
    found = []
    if has_leader:
        found = _once(lambda: kubesalt_core.etcd_client.members(gateway), "listing members")
    elif answering:
        # Without a leader a member still answers its member list from its own state: it
        # tells a founder still waiting for its peers from a survivor of a lost quorum.
        with contextlib.suppress(kubesalt_core.errors.EtcdError, kubesalt_core.errors.Unreachable):
            found = kubesalt_core.etcd_client.members(gateway)
    return {
        "leader": has_leader,
        "answering": answering,
        "members": [m.as_dict() for m in found],
    }


# --- disruptive steps, one master at a time -----------------------------------------------


def restart_safely(name, service="etcd", timeout=180, **kwargs):
    """
    Restart this master's etcd only when quorum holds without it, and only one master at a
    time (a lock in etcd); when it leads, hand leadership over first; wait until it answers
    with a leader again. Returns ``restarted``, ``leader_moved_to`` (or None) and the raft
    term seen after the restart.

    name
        This member's name.

    CLI Example:

    .. code-block:: bash

        salt master-2 kubesalt_etcd.restart_safely master-2
    """
    gateway = _gateway(**_connection(kwargs))
    with _salt_errors(), kubesalt_core.etcd_client.cluster_lock(gateway, "restart", name, timeout):
        deadline = time.monotonic() + float(timeout)
        while True:
            check = _removal_check(gateway, name)
            if check["member"] is None:
                raise CommandExecutionError(f"{name} is not a member; nothing to restart")
            if check["safe"]:
                break
            if time.monotonic() > deadline:
                raise CommandExecutionError(f"not restarting {name}: {check['reason']}")
            time.sleep(1)
        moved_to = _hand_over(gateway, check["member"], check["successor"])
        local = check["member"]["client_urls"][0]
        __salt__["service.restart"](service, no_block=True)
        time.sleep(1)
        answer = _wait_ready(gateway, local, timeout)
        return {"restarted": name, "leader_moved_to": moved_to, "raft_term": answer["raftTerm"]}
