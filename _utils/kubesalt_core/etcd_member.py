"""One etcd member's way in and out of the cluster, decided with no I/O.

``kubesalt_etcd_member.join_plan`` gathers the facts (what the cluster says live, whether
this host's member answers, whether its data dir holds data) and :func:`join_plan` turns
them into a :class:`Plan`: the steps, in order, that ``kubesalt_etcd_member.join`` takes.
``test=True`` shows the plan's changes, so what it predicts is what a run does. The same
for leaving (:func:`leave_plan`).

Steps (``Step.action``):

``found``      write the bootstrap member list (state ``new``) for the founders
``remove``     remove this member's old entry (it re-joins at another address)
``wait``       wait while another member is a learner (one join at a time), then re-plan
``move_data``  move the data dir aside (never delete it)
``add``        add this member as a learner; write the member list etcd answered
``write_env``  write the member list of the live cluster (state ``existing``)
``start``      start etcd (or restart it when it runs but does not answer)
``promote``    wait until it is in sync, then promote it to a voting member
``ready``      wait until it answers (a voting member that was only down)
``settle``     write the member list that names only this member (see
               ``kubesalt_core.etcd.settled_env``); a run that starts etcd does it too,
               once the member answers from its data dir
``hand_over``, ``retire``: see :func:`leave_plan`.
"""

from dataclasses import dataclass

import kubesalt_core.etcd

RESTORE = "kubesalt.orch.etcd_restore"


@dataclass(frozen=True)
class Step:
    action: str
    key: str  # the state's changes key ("" for a step that changes nothing)
    says: str  # what test=True shows for it


@dataclass(frozen=True)
class Plan:
    steps: tuple
    comment: str  # what a run that needs no step says
    initial: str = ""  # the member list the found or write_env step writes
    member: object = None  # the entry the plan is about (kubesalt_core.etcd.Member)

    @property
    def changes(self):
        return {s.key: s.says for s in self.steps if s.key}

    def has(self, action):
        return any(s.action == action for s in self.steps)


def _start(service, how=""):
    return Step("start", "started", f"start {service}{how}")


def _settle():
    return Step("settle", "bootstrap", "name only this member in its member-list file")


def _promote(name):
    return Step("promote", "promoted", f"promote {name} once in sync")


def join_plan(
    live, local_answers, has_data, name, peer_urls, founders, service="etcd", settled=True
):
    """The plan of ``member_present`` for member ``name`` at ``peer_urls``.

    ``live`` is what ``kubesalt_etcd.live_cluster`` answers (``leader``, ``members`` as
    dicts, ``answering``); ``local_answers``: this member answers at its client URL;
    ``has_data``: its data dir holds a member directory; ``founders``: ``{name: peer
    URL}`` of every master; ``settled``: its member-list file already names only itself.
    Raises ValueError when it must not go on (with the reason).
    """
    if not live["leader"]:
        return _without_leader(live, local_answers, has_data, name, founders, service)
    current = [kubesalt_core.etcd.member_from_dict(m) for m in live["members"]]
    step, member = kubesalt_core.etcd.join_step(current, name, peer_urls)
    if step == "present" and member.started and local_answers:
        steps = () if settled or not has_data else (_settle(),)
        return Plan(steps, f"{name} is a voting member and answers", member=member)
    if step == "present" and member.started and not has_data:
        # It ran before but its data is gone (a rebuilt host): etcd would panic on a raft
        # log the leader remembers, so the old entry goes and the member joins afresh.
        step = "relocate"
    elif step == "present":
        # A voting member that does not answer: start it (from its data dir, or with the
        # live member list when it has none).
        steps = [] if has_data else [Step("write_env", "", "")]
        steps += [_start(service), Step("ready", "", "")]
        initial = "" if has_data else kubesalt_core.etcd.initial_cluster(current, name, peer_urls)
        return Plan(tuple(steps), f"{name} is a voting member and answers", initial, member)

    steps = []
    if step == "relocate":
        steps.append(Step("remove", "removed", f"remove old entry {member.describe()}"))
    if step == "wait":
        steps.append(Step("wait", "waited", f"wait for {member.describe()} to finish joining"))
    initial = ""
    if step in ("add", "relocate", "wait"):
        if has_data:
            steps.append(Step("move_data", "data_dir", "move the data dir aside"))
        steps.append(Step("add", "added", f"add {name} at {','.join(peer_urls)} as a learner"))
    elif step == "promote" and not member.started:
        # Added by a run that stopped before etcd started here: finish that join.
        initial = kubesalt_core.etcd.initial_cluster(current, name, peer_urls)
        steps.append(Step("write_env", "", ""))
    steps += [_start(service, " with initial-cluster-state existing"), _promote(name)]
    comment = f"{name} joined as a learner, caught up and was promoted"
    return Plan(tuple(steps), comment, initial, member)


def _without_leader(live, local_answers, has_data, name, founders, service):
    """No endpoint reports a leader: found the cluster, or restart from local data."""
    if has_data and local_answers:
        answering = ", ".join(live["answering"]) or "none"
        return Plan(
            (),
            f"{name} runs from its data but no member reports a leader "
            f"(answering: {answering}); waiting for peers",
        )
    if has_data:
        return Plan((_start(service, " from its data dir"),), f"{name} started from its data dir")
    known = [kubesalt_core.etcd.member_from_dict(m) for m in live["members"]]
    if any(m.started and m.name == name for m in known):
        # A survivor still counts this member, which ran before and lost its data: the
        # quorum is lost. Founding afresh would give the cluster a second, empty history.
        answering = ", ".join(live["answering"])
        raise ValueError(
            f"no etcd member reports a leader, {name}'s data dir is empty and the members "
            f"that answer ({answering}) still count {name} as a member that ran: etcd has "
            f"lost its quorum. Start the members that are only down; if their data is gone "
            f"for good, restore from a snapshot with {RESTORE}. Nothing was changed"
        )
    if name not in founders:
        raise ValueError(
            f"no etcd member reports a leader and {name} is not among the founders "
            f"({', '.join(sorted(founders)) or 'none given'}); it can only join a "
            "running cluster"
        )
    initial = kubesalt_core.etcd.bootstrap_cluster(founders)
    return Plan(
        (
            Step("found", "founded", f"found a new cluster: {initial}"),
            _start(service, " as a founder"),
        ),
        f"no live cluster answered: {name} founded {initial}; the cluster elects a leader "
        "once a majority of founders run",
        initial,
    )


def leave_plan(name, check, local, has_data, service_runs, service="etcd"):
    """The plan of ``member_absent`` for ``name``: ``check`` is
    ``kubesalt_etcd.removal_check``'s answer; ``local``: the member is this host;
    ``has_data`` / ``service_runs``: of this host. Raises ValueError when the removal would
    break quorum (nothing changed then). The ``hand_over`` step is said only: ``remove``
    hands leadership over itself when it removes the leader."""
    member = check["member"]
    if member is not None and not check["safe"]:
        raise ValueError(f"refusing to remove {name}: {check['reason']}; nothing was changed")
    retire = local and (has_data or service_runs)
    steps = []
    if member is not None and check.get("successor"):
        successor = check["successor"]["name"]
        steps.append(Step("hand_over", "leader", f"hand leadership to {successor}"))
    if member is not None:
        described = kubesalt_core.etcd.member_from_dict(member).describe()
        steps.append(Step("remove", "removed", f"remove {described}"))
    if retire:
        steps.append(Step("retire", "stopped", f"stop {service} and move its data dir aside"))
    said = f"{name} is no longer a member" if steps else f"{name} is not a member"
    return Plan(tuple(steps), said, member=member)
