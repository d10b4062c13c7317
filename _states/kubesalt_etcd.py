"""
kubesalt_etcd: etcd membership as a state. Declare the masters in pillar; each run takes the
cluster one safe step towards them.

``member_present`` runs on the member itself: it founds the cluster (only when no
endpoint reports a leader, asked live), or joins it as a learner, starts etcd with the
member list read from the cluster, waits until it is in sync and promotes it. One member
joins at a time. ``member_absent`` removes a member when quorum holds without it; run on the
member itself, it also stops etcd there and moves its data dir aside.

.. code-block:: yaml

    etcd-member:
      kubesalt_etcd.member_present:
        - name: master-4
        - peer_urls: [https://198.18.0.14:2380]
        - client_urls: [https://198.18.0.14:2379]
        - data_dir: /var/lib/etcd
        - env_file: /etc/etcd/cluster.env
        - founders: {master-1: https://198.18.0.11:2380, ...}

    etcd-member-gone:
      kubesalt_etcd.member_absent:
        - name: master-3
"""

import datetime
import errno
import logging
import os
import time
from dataclasses import dataclass

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.etcd
import kubesalt_core.files
import kubesalt_core.loader

log = logging.getLogger(__name__)

__virtual_aliases__ = ("k8s_etcd",)  # before 0.2 (README, "Module names")

CONNECTION = ("endpoints", "cert", "key", "cacert")


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_etcd.members")


def _ret(name):
    return {"name": name, "result": True, "comment": "", "changes": {}}


def _conn(kwargs):
    return {k: kwargs[k] for k in CONNECTION if kwargs.get(k)}


def _has_data(data_dir):
    return bool(data_dir) and os.path.isdir(os.path.join(data_dir, "member"))


def _move_aside(data_dir):
    """Move what ``data_dir`` holds to ``<data_dir>.removed-<UTC time>``; never delete it.

    The data dir itself stays (it may be a mount point). When the sibling is on another
    file system, the contents go to ``<data_dir>/removed-<UTC time>`` instead (etcd logs a
    warning about the extra directory and ignores it).
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    entries = sorted(os.listdir(data_dir))
    for target in (f"{data_dir.rstrip('/')}.removed-{stamp}", f"{data_dir}/removed-{stamp}"):
        os.makedirs(target, mode=0o700, exist_ok=True)
        try:
            for entry in entries:
                os.rename(os.path.join(data_dir, entry), os.path.join(target, entry))
        except OSError as err:
            if err.errno != errno.EXDEV or entries[0] != entry:
                raise
            os.rmdir(target)
            continue
        return target
    raise CommandExecutionError(f"could not move {data_dir} aside")


def _write_cluster_env(spec, state, initial):
    text = kubesalt_core.etcd.cluster_env(state, initial, spec.token)
    kubesalt_core.files.write_atomically(spec.env_file, text, 0o644)


def _start(spec):
    """Start (or restart, if it runs but does not answer) the unit, then wait until the
    member answers at its client URL. False when it already answered."""
    service, url, conn = spec.service, spec.client_url, spec.conn
    if __salt__["kubesalt_etcd.answers"](url, **conn):
        return False
    if "service.start" not in __salt__:
        raise CommandExecutionError(
            f"etcd does not answer at {url} and this host has no service manager "
            f"Salt can drive to start {service}"
        )
    # no_block: a founder's etcd reports ready only once a majority of founders run.
    if __salt__["service.status"](service):
        __salt__["service.restart"](service, no_block=True)
    else:
        __salt__["service.start"](service, no_block=True)
    deadline = time.monotonic() + spec.timeout
    while not __salt__["kubesalt_etcd.answers"](url, **conn):
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{service} was started but does not answer at {url} after "
                f"{spec.timeout} s; see journalctl -u {service}"
            )
        time.sleep(0.5)
    __context__["kubesalt_etcd.started"] = True
    return True


def _live_members(conn):
    return [
        kubesalt_core.etcd.member_from_dict(m) for m in __salt__["kubesalt_etcd.members"](**conn)
    ]


def _wait_for_other_join(conn, timeout):
    """Wait while another member is a learner; return the fresh member list."""
    deadline = time.monotonic() + timeout
    while True:
        current = _live_members(conn)
        learners = [m for m in current if m.is_learner]
        if not learners:
            return current
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{learners[0].describe()} is still joining after {timeout} s; kubesalt "
                "joins one member at a time. Let its run finish, or remove the stale "
                "learner with kubesalt_etcd.member_absent"
            )
        time.sleep(1)


@dataclass(frozen=True)
class _Member:
    """What member_present was told about the member it runs for."""

    name: str
    peer_urls: list
    client_urls: list
    data_dir: str
    env_file: str
    founders: dict
    token: str
    service: str
    timeout: float
    conn: dict
    test: bool

    @property
    def client_url(self):
        return self.client_urls[0]


def member_present(
    name,
    peer_urls,
    client_urls,
    data_dir,
    env_file,
    founders=None,
    token="kubesalt",
    service="etcd",
    timeout=180,
    **kwargs,
):
    """
    ``name`` is a voting member of the etcd cluster at ``peer_urls``, and its etcd runs.

    peer_urls / client_urls
        This member's URLs. ``client_urls[0]`` is where its readiness is checked.
    data_dir
        Its data dir: moved aside (never deleted) when it holds data of a membership the
        cluster no longer has.
    env_file
        Where the join decision is written (initial cluster, state, token) for the unit.
    founders
        ``{name: peer_url}`` of every master: the initial cluster of a new cluster, which is
        founded only when no endpoint reports a leader right now.
    endpoints, cert, key, cacert
        How to reach the cluster (default: every master, with the apiserver-etcd-client
        cert).
    """
    ret = _ret(name)
    spec = _Member(
        name=name,
        peer_urls=[peer_urls] if isinstance(peer_urls, str) else list(peer_urls),
        client_urls=[client_urls] if isinstance(client_urls, str) else list(client_urls),
        data_dir=data_dir,
        env_file=env_file,
        founders=founders or {},
        token=token,
        service=service,
        timeout=float(timeout),
        conn=_conn(kwargs),
        test=bool(__opts__["test"]),
    )
    try:
        return _member_present(ret, spec)
    except (CommandExecutionError, SaltInvocationError, ValueError) as err:
        ret["result"] = False
        done = ", ".join(ret["changes"]) or "nothing"
        ret["comment"] = f"{err} (done before this: {done})"
        return ret


def _member_present(ret, spec):
    conn = spec.conn
    live = __salt__["kubesalt_etcd.live_cluster"](**conn)
    local_answers = __salt__["kubesalt_etcd.answers"](spec.client_url, **conn)
    if not live["leader"]:
        return _found_or_restart(ret, spec, live, local_answers)
    current = [kubesalt_core.etcd.member_from_dict(m) for m in live["members"]]
    step, member = kubesalt_core.etcd.join_step(current, spec.name, spec.peer_urls)

    if step == "present" and member.started and local_answers:
        ret["comment"] = f"{spec.name} is a voting member and answers"
        return ret
    if step == "present" and member.started and not _has_data(spec.data_dir):
        # It ran before but its data is gone (a rebuilt host): etcd would panic on a raft
        # log the leader remembers, so the old entry goes and the member joins afresh.
        step = "relocate"
    elif step == "present":
        return _start_listed(ret, spec, current)

    if spec.test:
        ret["result"] = None
        ret["changes"] = _predict(step, spec, member)
        ret["comment"] = "would " + "; then ".join(ret["changes"].values())
        return ret

    if step == "relocate":
        removed = __salt__["kubesalt_etcd.remove"](member.id, timeout=spec.timeout, **conn)
        ret["changes"]["removed"] = f"old entry {removed['id']} at {','.join(removed['peer_urls'])}"
        step = "add"
    if step == "wait":
        current = _wait_for_other_join(conn, spec.timeout)
        step, member = kubesalt_core.etcd.join_step(current, spec.name, spec.peer_urls)
    if step == "add":
        if _has_data(spec.data_dir):
            ret["changes"]["data_dir"] = f"moved aside to {_move_aside(spec.data_dir)}"
        added = __salt__["kubesalt_etcd.add"](
            spec.name, spec.peer_urls, learner=True, timeout=spec.timeout, **conn
        )
        ret["changes"]["added"] = f"learner {added['member']['id']}"
        _write_cluster_env(spec, "existing", added["initial_cluster"])
    elif step == "promote" and not member.started:
        # Added by a run that stopped before etcd started here: finish that join.
        initial = kubesalt_core.etcd.initial_cluster(_live_members(conn), spec.name, spec.peer_urls)
        _write_cluster_env(spec, "existing", initial)
    if _start(spec):
        ret["changes"]["started"] = spec.service
    __salt__["kubesalt_etcd.wait_ready"](spec.client_url, timeout=spec.timeout, **conn)
    promoted = __salt__["kubesalt_etcd.promote"](spec.name, timeout=spec.timeout, **conn)
    if promoted["promoted"]:
        ret["changes"]["promoted"] = f"{spec.name} votes"
    ret["comment"] = f"{spec.name} joined as a learner, caught up and was promoted"
    return ret


def _predict(step, spec, member):
    changes = {}
    if step == "relocate":
        changes["removed"] = f"remove old entry {member.describe()}"
    if step == "wait":
        changes["waited"] = f"wait for {member.describe()} to finish joining"
    if step in ("add", "relocate", "wait"):
        if _has_data(spec.data_dir):
            changes["data_dir"] = f"move {spec.data_dir} aside"
        changes["added"] = f"add {spec.name} at {','.join(spec.peer_urls)} as a learner"
    changes["started"] = "start etcd with initial-cluster-state existing"
    changes["promoted"] = f"promote {spec.name} once in sync"
    return changes


def _start_listed(ret, spec, current):
    """A voting member that does not answer: start it (its data dir or the live list)."""
    if spec.test:
        ret["result"] = None
        ret["changes"] = {"started": f"start {spec.service}"}
        ret["comment"] = f"{spec.name} is a voting member; would start {spec.service}"
        return ret
    if not _has_data(spec.data_dir):
        initial = kubesalt_core.etcd.initial_cluster(current, spec.name, spec.peer_urls)
        _write_cluster_env(spec, "existing", initial)
    if _start(spec):
        ret["changes"]["started"] = spec.service
    __salt__["kubesalt_etcd.wait_ready"](spec.client_url, timeout=spec.timeout, **spec.conn)
    ret["comment"] = f"{spec.name} is a voting member and answers"
    return ret


def _found_or_restart(ret, spec, live, local_answers):
    """No endpoint reports a leader: found the cluster, or restart from local data."""
    name, service = spec.name, spec.service
    if _has_data(spec.data_dir):
        if local_answers:
            ret["comment"] = (
                f"{name} runs from its data but no member reports a leader "
                f"(answering: {', '.join(live['answering']) or 'none'}); waiting for peers"
            )
            return ret
        if spec.test:
            ret["result"] = None
            ret["changes"] = {"started": f"start {service} from its data dir"}
            ret["comment"] = f"would start {service} from its data dir"
            return ret
        if _start(spec):
            ret["changes"]["started"] = f"{service} from its data dir"
        ret["comment"] = f"{name} started from its data dir"
        return ret
    if name not in spec.founders:
        raise SaltInvocationError(
            f"no etcd member reports a leader and {name} is not among the founders "
            f"({', '.join(sorted(spec.founders)) or 'none given'}); it can only join a "
            "running cluster"
        )
    initial = kubesalt_core.etcd.bootstrap_cluster(spec.founders)
    if spec.test:
        ret["result"] = None
        ret["changes"] = {"founded": f"start {service} as a founder of {initial}"}
        ret["comment"] = "no live cluster answers: would found a new one"
        return ret
    _write_cluster_env(spec, "new", initial)
    ret["changes"]["founded"] = initial
    if _start(spec):
        ret["changes"]["started"] = service
    ret["comment"] = (
        f"no live cluster answered: {name} founded {initial}; the cluster elects a leader "
        "once a majority of founders run"
    )
    return ret


def member_absent(name, data_dir=None, env_file=None, service="etcd", timeout=60, **kwargs):
    """
    ``name`` is not a member. Refused when the healthy voting members left would not be a
    majority of the voting members now, or when it is the last one. On the member itself
    (``name`` is this minion's id) etcd is then stopped and ``data_dir`` moved aside.

    CLI Example:

    .. code-block:: bash

        salt master-1 state.single kubesalt_etcd.member_absent master-3
    """
    ret = _ret(name)
    conn = _conn(kwargs)
    local = name == __opts__["id"]
    try:
        check = __salt__["kubesalt_etcd.removal_check"](name, **conn)
        member = check["member"]
        if member is not None and not check["safe"]:
            ret["result"] = False
            ret["comment"] = f"refusing to remove {name}: {check['reason']}; nothing was changed"
            return ret
        retire = local and (_has_data(data_dir) or __salt__["service.status"](service))
        if member is None and not retire:
            ret["comment"] = f"{name} is not a member"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            if check.get("successor"):
                ret["changes"]["leader"] = f"hand leadership to {check['successor']['name']}"
            if member is not None:
                ret["changes"]["removed"] = (
                    f"remove {kubesalt_core.etcd.member_from_dict(member).describe()}"
                )
            if retire:
                ret["changes"]["stopped"] = f"stop {service} and move {data_dir} aside"
            ret["comment"] = "would " + "; ".join(ret["changes"].values())
            return ret
        if member is not None:
            removed = __salt__["kubesalt_etcd.remove"](name, timeout=timeout, **conn) or {}
            if removed.get("leader_moved_to"):
                ret["changes"]["leader"] = f"handed over to {removed['leader_moved_to']}"
            ret["changes"]["removed"] = f"{member['id']} at {','.join(member['peer_urls'])}"
        if retire:
            __salt__["service.stop"](service)
            __salt__["service.disable"](service)
            ret["changes"]["stopped"] = service
            if _has_data(data_dir):
                ret["changes"]["data_dir"] = f"moved aside to {_move_aside(data_dir)}"
            if env_file and os.path.exists(env_file):
                os.unlink(env_file)
        ret["comment"] = f"{name} is no longer a member"
    except (CommandExecutionError, SaltInvocationError) as err:
        ret["result"] = False
        done = ", ".join(ret["changes"]) or "nothing"
        ret["comment"] = f"{err} (done before this: {done})"
    return ret


def mod_watch(name, sfun=None, service="etcd", timeout=180, **kwargs):
    """
    A watched file or package changed: restart this member, unless this run just started
    it. The restart waits until quorum holds without this member and takes a cluster-wide
    lock, so concurrent runs restart the masters one at a time.
    """
    ret = _ret(name)
    if sfun != "member_present":
        ret["comment"] = f"nothing to do on watch for {sfun}"
        return ret
    if __context__.get("kubesalt_etcd.started"):
        ret["comment"] = f"{service} was started in this run with the current files"
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"restarted": f"restart {service} once quorum holds without it"}
        ret["comment"] = f"would restart {service}, one master at a time"
        return ret
    try:
        restarted = __salt__["kubesalt_etcd.restart_safely"](
            name, service=service, timeout=timeout, **_conn(kwargs)
        )
    except CommandExecutionError as err:
        ret["result"] = False
        ret["comment"] = str(err)
        return ret
    ret["changes"] = {"restarted": service}
    if restarted.get("leader_moved_to"):
        ret["changes"]["leader"] = f"handed over to {restarted['leader_moved_to']}"
    ret["comment"] = f"restarted {service}; it answers with a leader"
    return ret


def healthy(name, timeout=120, **kwargs):
    """
    Every voting member answers with a leader and no member is a learner; waits up to
    ``timeout`` seconds for it. Changes nothing: orchestrations put it between steps.

    .. code-block:: yaml

        etcd-healthy:
          kubesalt_etcd.healthy:
            - name: etcd
    """
    ret = _ret(name)
    conn = _conn(kwargs)
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            summary = __salt__["kubesalt_etcd.health"](**conn)
            problem = None
            if summary["healthy_voting_members"] < summary["voting_members"]:
                problem = (
                    f"{summary['healthy_voting_members']} of {summary['voting_members']} "
                    "voting members are healthy"
                )
            elif summary["learners"]:
                problem = f"{summary['learners']} learner(s) still joining"
        except CommandExecutionError as err:
            problem = str(err)
        if problem is None:
            ret["comment"] = (
                f"{summary['voting_members']} voting members, all healthy; leader "
                f"{summary['leader']}"
            )
            return ret
        if time.monotonic() > deadline:
            ret["result"] = False
            ret["comment"] = f"etcd is not healthy after {timeout} s: {problem}"
            return ret
        time.sleep(1)
