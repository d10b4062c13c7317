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

import logging
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

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


def _failed(ret, err):
    ret["result"] = False
    ret["comment"] = str(err)
    return ret


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

    The plan comes from ``kubesalt_etcd_member.join_plan``; ``test=True`` shows it, a run
    carries it out (``kubesalt_etcd_member.join``).
    """
    ret = _ret(name)
    conn = _conn(kwargs)
    where = {"peer_urls": peer_urls, "client_urls": client_urls, "data_dir": data_dir}
    try:
        if __opts__["test"]:
            plan = __salt__["kubesalt_etcd_member.join_plan"](
                name, founders=founders, service=service, env_file=env_file, token=token,
                **where, **conn,
            )  # fmt: skip
            ret.update(plan, result=None if plan["changes"] else True)
            return ret
        done = __salt__["kubesalt_etcd_member.join"](
            name, env_file=env_file, founders=founders, token=token, service=service,
            timeout=timeout, **where, **conn,
        )  # fmt: skip
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    if done["started"]:
        __context__["kubesalt_etcd.started"] = True
    ret.update(changes=done["changes"], comment=done["comment"])
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
    try:
        if __opts__["test"]:
            plan = __salt__["kubesalt_etcd_member.leave_plan"](
                name, data_dir=data_dir, service=service, **conn
            )
            ret.update(plan, result=None if plan["changes"] else True)
            return ret
        done = __salt__["kubesalt_etcd_member.leave"](
            name, data_dir=data_dir, env_file=env_file, service=service, timeout=timeout, **conn
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    ret.update(done)
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


def owned(name):
    """
    etcd's system user exists and owns its data directory ``name`` and its copies of its
    certificates and keys (``kubesalt_etcd_member.owned_plan`` says what would change).

    name
        The data directory (``paths:etcd_data_dir``), for the output.
    """
    ret = _ret(name)
    try:
        changes = __salt__["kubesalt_etcd_member.owned_plan"]()
        if changes and __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "would give etcd its user, data and TLS copies"
        elif changes:
            changes = __salt__["kubesalt_etcd_member.owned"]()
            ret["comment"] = "etcd's user, data and TLS copies set"
        else:
            ret["comment"] = "etcd owns its data and its TLS copies"
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    ret["changes"] = changes
    return ret


def running_current(name, files, service="etcd", timeout=180, **kwargs):
    """
    etcd started after ``files`` (its unit and environment files) were last written; when
    not (a restart an earlier run could not make while quorum did not allow it), restarted
    the safe way (``kubesalt_etcd.restart_safely``).

    name
        This member's name.
    """
    ret = _ret(name)
    try:
        stale = __salt__["kubesalt_unit.stale_credentials"](service, paths=files)
        if not stale:
            ret["comment"] = f"{service} runs with its current unit and config"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = {"restarted": service, "newer than its start": stale}
            ret["comment"] = f"would restart {service}, one master at a time"
            return ret
        __salt__["kubesalt_etcd.restart_safely"](
            name, service=service, timeout=timeout, **_conn(kwargs)
        )
    except (CommandExecutionError, SaltInvocationError) as err:
        return _failed(ret, err)
    ret["changes"] = {"restarted": service, "newer than its start": stale}
    ret["comment"] = f"restarted {service}: it ran with older files"
    return ret
