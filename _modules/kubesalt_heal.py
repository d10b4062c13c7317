"""
kubesalt_heal: repair a unit of this node that systemd gave up on, and keep a record of it.

The loop: the journal beacon (``_beacons/kubesalt_journal.py``) sees a managed unit fail for
good (``ActiveState=failed``, e.g. its start limit hit) and tells the master; the reactor
(``reactor/repair.sls``) sends :func:`repair` back to the minion that reported it; the repair
runs here, on the node, and trusts nothing in the event:

- the unit must be one this node's roles manage (roles from pillar, which the master
  compiles for this minion's authenticated id); anything else is refused and recorded;
- the unit must really be failed here and now; otherwise nothing is done (a forged or stale
  event costs one ``systemctl show``);
- one repair per unit at a time (a lock in ``paths:heal_dir``); a second one returns at once;
- what to do comes from ``kubesalt_core.heal.decide`` over the history kept on the node:
  reset-failed and restart, with backoff between repairs that did not hold; after
  ``heal:restarts_before_reapply`` of those, re-apply the component's state once (config
  drift, a missing or expired certificate); when ``heal:budget_attempts`` repairs within
  ``heal:window_seconds`` did not hold, fire ``kubesalt/unit/escalated`` (with the unit's
  last journal lines) and stand down until an operator runs :func:`reset`.

A repair "holds" when the unit is active and stays so, in the same invocation, for
``heal:hold_seconds``. While a repair runs, the beacon stays quiet about its unit, so the
repair's own restarts never feed the reactor again.

CLI Example:

.. code-block:: bash

    salt worker-1 kubesalt_heal.repair containerd.service
    salt '*' kubesalt_heal.history
    salt master-1 kubesalt_heal.status
    salt master-1 kubesalt_heal.reset etcd.service
    salt master-1 kubesalt_heal.pause kube-apiserver.service "kubesalt.orch.etcd_restore"
"""

import datetime
import logging
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.components
import kubesalt_core.errors
import kubesalt_core.heal
import kubesalt_core.heal_store
import kubesalt_core.systemd

log = logging.getLogger(__name__)

__virtual_aliases__ = ("k8s_heal",)  # before 0.2 (README, "Module names")

ESCALATED_TAG = "kubesalt/unit/escalated"
# How long a unit may take to come up (or fail) after a restart before the repair calls it
# flapping; etcd waits for its peers, containerd for its snapshotters.
SETTLE_SECONDS = 60
POLL_SECONDS = 0.5


def _context():
    """The validated config, this node's managed units, its heal policy and its store."""
    config = __salt__["kubesalt.config"]()
    managed = kubesalt_core.components.managed_units(__salt__["kubesalt.roles"]())
    policy = kubesalt_core.heal.Policy.from_config(config.get("heal"))
    store = kubesalt_core.heal_store.Store(config["paths"]["heal_dir"])
    return managed, policy, store


def _check_managed(unit, managed, store):
    if isinstance(unit, str) and unit in managed:
        return unit
    shown = unit[:120] if isinstance(unit, str) else repr(unit)[:120]
    store.record(
        kubesalt_core.heal.Attempt(shown, time.time(), "refused", False, "not a managed unit")
    )
    expected = ", ".join(sorted(managed)) or "none (this node has no kubesalt role)"
    raise SaltInvocationError(
        f"unit {shown!r} is not one kubesalt manages on {__opts__['id']}; "
        f"expected one of: {expected}"
    )


def _healthy(unit):
    """``(healthy, what its probe said)`` by the component's own health probe; a component
    without one is healthy when active."""
    name = unit[: -len(".service")]
    answer = __salt__["kubesalt_unit.health"](name).get(unit)
    if answer is None:
        return True, ""
    return answer["healthy"], f"{answer['url'].split('/', 3)[-1]}: {answer['detail'][:60]}"


def _observe(unit, hold_seconds, settle_seconds=SETTLE_SECONDS):
    """Watch ``unit`` until it has been active for ``hold_seconds`` in one invocation and
    its health probe answers (the apiserver's /readyz, Typha's readiness: "held"), fails
    again ("failed"), is stopped ("inactive"), or ``settle_seconds`` pass ("flapping"; "not
    healthy" when it stayed active without its probe answering)."""
    deadline = time.monotonic() + settle_seconds + hold_seconds
    since, seen, answered, said = None, None, None, ""
    while True:
        props = kubesalt_core.systemd.show([unit]).get(unit, {})
        state = props.get("ActiveState")
        # Failed again, whether systemd gave up or waits to retry by itself (auto-restart):
        # either way this repair did not hold.
        if state == "failed" or props.get("SubState") == "auto-restart":
            return "failed", props, said
        if state == "inactive":
            return "inactive", props, said
        run = (props.get("InvocationID"), props.get("NRestarts"))
        if state == "active":
            if run != seen:
                since, seen = time.monotonic(), run
            if time.monotonic() - since >= hold_seconds:
                answered, said = _healthy(unit)
                if answered:
                    return "held", props, said
        else:
            since, seen = None, None
        if time.monotonic() >= deadline:
            return ("not healthy" if answered is False else "flapping"), props, said
        time.sleep(POLL_SECONDS)


def _act(unit, action):
    """Do ``action`` (restart or reapply) to ``unit``; returns what it says about it."""
    kubesalt_core.systemd.reset_failed(unit)
    if action == "reapply":
        sls = kubesalt_core.components.state_of(unit)
        ret = __salt__["state.apply"](sls, queue=kubesalt_core.heal.STATE_QUEUE)
        if isinstance(ret, dict):
            failed = [k for k, s in ret.items() if not s.get("result")]
            changed = [k for k, s in ret.items() if s.get("changes")]
            detail = f"state.apply {sls}: {len(changed)} changed, {len(failed)} failed"
        else:  # a render error or a conflict: Salt answers with a list of messages
            detail = f"state.apply {sls} did not run: {'; '.join(map(str, ret))[:300]}"
        if kubesalt_core.systemd.active_state(unit) != "active":
            kubesalt_core.systemd.reset_failed(unit)
            ok, said = kubesalt_core.systemd.restart(unit)
            detail += "; restarted" if ok else f"; restart failed: {said}"
        return detail
    ok, said = kubesalt_core.systemd.restart(unit)
    return "restarted" if ok else f"restart failed: {said}"


def _escalate(unit, decision, store, trigger):
    lines = kubesalt_core.systemd.last_lines(unit)
    attempts = [
        {"at": a.at, "action": a.action, "held": a.held, "detail": a.detail}
        for a in store.history()
        if a.unit == unit
    ][-10:]
    payload = {
        "unit": unit,
        "reason": decision.reason,
        "attempts": attempts,
        "journal": lines,
        "trigger": trigger,
    }
    fired = __salt__["event.fire_master"](payload, ESCALATED_TAG)
    store.record(
        kubesalt_core.heal.Attempt(
            unit,
            time.time(),
            kubesalt_core.heal.ESCALATE,
            False,
            decision.reason,
            {"journal": lines},
        )
    )
    log.error("kubesalt: %s escalated: %s", unit, decision.reason)
    return fired


def _paused_during(store, unit, seconds):
    """Sleep ``seconds``, or less when ``unit`` is paused meanwhile (then True)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if store.paused(unit):
            return True
        time.sleep(min(POLL_SECONDS * 2, max(deadline - time.monotonic(), 0)))
    return False


def _repair_loop(unit, policy, store, trigger):
    steps = []

    def done(outcome):
        return {"unit": unit, "outcome": outcome, "steps": steps}

    state = kubesalt_core.systemd.active_state(unit)
    if state != "failed":
        detail = f"ActiveState={state}: nothing to repair"
        store.record(
            kubesalt_core.heal.Attempt(
                unit, time.time(), "none", state == "active", detail, trigger
            )
        )
        return done("nothing to do")
    while True:
        paused = store.paused(unit)
        if paused:
            # Paused while this repair waited: whoever paused it keeps the unit as it is.
            detail = f"paused by {paused['by']}"
            steps.append(detail)
            store.record(kubesalt_core.heal.Attempt(unit, time.time(), "none", False, detail))
            return done("paused: left alone")
        decision = kubesalt_core.heal.decide(unit, store.history(), time.time(), policy)
        if decision.action == "wait":
            steps.append(f"wait {decision.wait_seconds:.0f}s: {decision.reason}")
            if _paused_during(store, unit, decision.wait_seconds):
                continue
            seen, _, _ = _observe(unit, policy.hold_seconds, settle_seconds=0)
            if seen == "held":
                store.record(
                    kubesalt_core.heal.Attempt(
                        unit, time.time(), "none", True, "active again by itself"
                    )
                )
                return done("recovered by itself")
            continue
        if decision.action == "stand-down":
            steps.append(decision.reason)
            store.record(
                kubesalt_core.heal.Attempt(
                    unit, time.time(), "none", False, decision.reason, trigger
                )
            )
            return done("escalated earlier")
        if decision.action == kubesalt_core.heal.ESCALATE:
            steps.append(f"escalate: {decision.reason}")
            _escalate(unit, decision, store, trigger)
            return done("escalated")
        started = time.time()
        detail = _act(unit, decision.action)
        seen, props, said = _observe(unit, policy.hold_seconds)
        health = f", {said}" if said else ""
        detail = f"{detail}; {seen} (ActiveState={props.get('ActiveState')}{health})"
        steps.append(f"{decision.action}: {detail}")
        store.record(
            kubesalt_core.heal.Attempt(
                unit, started, decision.action, seen == "held", detail, trigger
            )
        )
        if seen == "held":
            return done("repaired")
        if seen == "inactive":
            return done("stopped by someone else: left alone")


def repair(unit, invocation_id=None, result=None):
    """
    Repair ``unit`` on this node if, and only if, kubesalt manages it here and it is failed.

    Runs until the unit holds, the loop escalates, or the unit turns out not to need it
    (see the module docstring); returns ``{"unit", "outcome", "steps"}``. ``outcome`` is one
    of: repaired, nothing to do, in flight (another repair of the unit runs), recovered by
    itself, escalated, escalated earlier, stopped by someone else: left alone, paused: left
    alone (see :func:`pause`).

    unit
        The systemd unit, e.g. ``containerd.service``; it must be one of this node's roles.
    invocation_id, result
        What the journal said about the failure (recorded with the repair; never used to
        decide anything).

    CLI Example:

    .. code-block:: bash

        salt worker-1 kubesalt_heal.repair containerd.service
    """
    managed, policy, store = _context()
    unit = _check_managed(unit, managed, store)
    trigger = {"invocation_id": invocation_id, "result": result}
    try:
        with store.repairing(unit):
            return _repair_loop(unit, policy, store, trigger)
    except kubesalt_core.errors.InFlight:
        return {"unit": unit, "outcome": "in flight", "steps": []}
    except kubesalt_core.errors.SystemdError as err:
        raise CommandExecutionError(f"repair of {unit} stopped: {err}") from err


def pause(unit, by, seconds=3600, wait=180):
    """
    Leave ``unit`` alone for ``seconds``: no repair of it and no event from the beacon, for
    an orchestration that keeps it stopped on purpose (``by`` says which, and why). Ends
    with :func:`resume` or by itself. A repair of it already running stops at its next
    step: this waits up to ``wait`` seconds for that, and fails if it is still running.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_heal.pause kube-apiserver.service "kubesalt.orch.etcd_restore"
    """
    managed, _, store = _context()
    unit = _check_managed(unit, managed, store)
    if not by:
        raise SaltInvocationError("Invalid value for by: expected who pauses the repairs")
    store.pause(unit, str(by), float(seconds))
    deadline = time.monotonic() + float(wait)
    while store.in_flight(unit):
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{unit} is paused, but the repair running since before the pause (pid "
                f"{store.in_flight(unit)}) has not stopped after {wait} s"
            )
        time.sleep(POLL_SECONDS)
    return store.paused(unit)


def resume(unit):
    """
    Repair ``unit`` again when it fails (ends :func:`pause`). Whoever paused it has dealt
    with it, so its budget and backoff start over, as after :func:`reset`. True when it
    was paused.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_heal.resume kube-apiserver.service
    """
    managed, _, store = _context()
    unit = _check_managed(unit, managed, store)
    paused = store.paused(unit)
    if not store.resume(unit):
        return False
    by = paused["by"] if paused else "a pause that had expired"
    store.record(
        kubesalt_core.heal.Attempt(unit, time.time(), kubesalt_core.heal.RESET, False,
                                   f"resumed after {by}")
    )  # fmt: skip
    return True


def paused():
    """
    The units of this node whose repairs are paused (:func:`pause`), each with who paused
    it and until when; ``{}`` when none is. The master's scheduled highstate leaves such a
    node alone (``kubesalt_schedule.highstate``): it would start what is kept stopped.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_heal.paused
    """
    managed, _, store = _context()
    out = {}
    for unit in sorted(managed):
        record = store.paused(unit)
        if record:
            until = datetime.datetime.fromtimestamp(float(record["until"]), datetime.UTC)
            out[unit] = {"by": record["by"], "until": until.isoformat(timespec="seconds")}
    return out


def _as_dict(attempt):
    when = datetime.datetime.fromtimestamp(attempt.at, datetime.UTC)
    return {
        "unit": attempt.unit,
        "at": when.isoformat(timespec="seconds"),
        "epoch": round(attempt.at, 3),
        "action": attempt.action,
        "held": attempt.held,
        "detail": attempt.detail,
    }


def history(unit=None, last=20):
    """
    What the healing loop did on this node, newest last: unit, when (UTC, and as ``epoch``
    seconds), what was done
    (restart, reapply, escalate, reset, none, refused), whether it held, and the detail.

    unit
        Only this unit. Default: every unit.
    last
        How many records. Default: 20.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_heal.history
        salt master-1 kubesalt_heal.history unit=etcd.service last=5
    """
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise SaltInvocationError(f"last: expected a whole number of at least 1, got {last!r}")
    _, _, store = _context()
    records = [a for a in store.history() if unit is None or a.unit == unit]
    return [_as_dict(a) for a in records[-last:]]


def reset(unit):
    """
    Tell the healing loop an operator has dealt with ``unit``: its budget and backoff start
    over (the history stays). The unit itself is not touched.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_heal.reset etcd.service
    """
    managed, _, store = _context()
    unit = _check_managed(unit, managed, store)
    store.record(
        kubesalt_core.heal.Attempt(
            unit, time.time(), kubesalt_core.heal.RESET, False, "reset by an operator"
        )
    )
    return {"unit": unit, "reset": True}


def status():
    """
    Every unit this node's roles manage: its ActiveState, whether a repair is in flight,
    repairs within the window, and what the loop would do if it failed now.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt_heal.status
    """
    managed, policy, store = _context()
    attempts = store.history()
    props = kubesalt_core.systemd.show(sorted(managed))
    now = time.time()
    out = {}
    for unit in sorted(managed):
        mine = [a for a in attempts if a.unit == unit and now - a.at < policy.window_seconds]
        out[unit] = {
            "active_state": props.get(unit, {}).get("ActiveState"),
            "in_flight": store.in_flight(unit),
            "repairs_in_window": sum(1 for a in mine if a.action in kubesalt_core.heal.REPAIRS),
            "next": kubesalt_core.heal.decide(unit, attempts, now, policy).action,
        }
    return out
