"""Breaking units on the lab's hosts the way production breaks them, and watching kubesalt's
healing loop repair them (for the lab tests and bench/heal.py).

"Systemd gave up" is made the way it happens: the unit's start limit (5 starts in 120 s) is
used up by restarts, then its main process is SIGKILLed; systemd's own restart is refused
("Start request repeated too quickly") and the unit is left failed.
"""

import json

from kubesalt_core.heal import START_FAILED
from kubesalt_lab import containers, master, report
from kubesalt_lab.system import wait_until

# systemd's MESSAGE_ID of "Started <unit>" (START_FAILED: the refused restart).
STARTED = "39f53479d3a045ac8e11786248231fbf"
BEACON_TAG = "salt/beacon/{node}/kubesalt_journal/failed"


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def sh(lab, node_id, script, timeout=120):
    """Run a bash script on a lab host; returns the CompletedProcess (not checked)."""
    argv = ["bash", "-c", script]
    return containers.inside(lab, _node(lab, node_id), argv, check=False, timeout=timeout)


def unit_props(lab, node_id, unit):
    text = sh(lab, node_id, f"systemctl show -p Id,ActiveState,SubState,InvocationID {unit}")
    return report.parse_systemctl_show(text.stdout)[0]


def salt(lab, node_id, fun, *args, timeout=60):
    return master.run_salt(lab, node_id, fun, *args, timeout=timeout).get(node_id)


def history(lab, node_id, unit):
    """The node's kubesalt_heal.history of ``unit`` ([] while its minion does not answer)."""
    records = salt(lab, node_id, "kubesalt_heal.history", f"unit={unit}", "last=100")
    return records if isinstance(records, list) else []


def give_up(lab, node_id, unit, before_kill=""):
    """Use up ``unit``'s start limit, run ``before_kill`` (shell), SIGKILL its main process:
    systemd's restart is then refused and the unit left failed."""
    sh(
        lab,
        node_id,
        f"for i in 1 2 3 4 5; do systemctl restart {unit}; done; {before_kill}\n"
        f"systemctl kill --signal=SIGKILL --kill-whom=main {unit}",
    )


def wait_active(lab, node_id, unit, timeout=60):
    def active():
        props = unit_props(lab, node_id, unit)
        return props if props["ActiveState"] == "active" else None

    return wait_until(active, timeout, interval=0.5, what=f"{unit} active on {node_id}")


def wait_repair_recorded(lab, node_id, unit, since, timeout=60):
    """The healing loop's restart/reapply records of ``unit`` from ``since`` (epoch s) on,
    once one that held is there."""

    def recorded():
        mine = [
            r
            for r in history(lab, node_id, unit)
            if r["action"] in ("restart", "reapply") and r["epoch"] >= since
        ]
        return mine if any(r["held"] for r in mine) else None

    return wait_until(recorded, timeout, interval=1, what=f"the repair of {unit} on {node_id}")


def forge(lab, from_node, events):
    """What a compromised minion can send: beacon-shaped events with any id and unit, over
    its own authenticated connection to the master. ``events``: ``[(tag, data), ...]``."""
    load = {
        "data": None,
        "tag": None,
        "pretag": None,
        "events": [{"tag": tag, "data": data} for tag, data in events],
    }
    salt(lab, from_node, "event.fire", json.dumps(load), "fire_master")


def time_to_repair(lab, node_id, unit, since):
    """From the journal: (when systemd gave up on ``unit`` after ``since``, when it was
    started again), both epoch seconds; None for what is not there."""
    out = sh(lab, node_id, f"journalctl -o json _PID=1 UNIT={unit} --since=@{int(since)}").stdout
    failed = started = None
    for line in out.splitlines():
        entry = json.loads(line)
        at = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
        if entry.get("MESSAGE_ID") == START_FAILED and failed is None:
            failed = at
        elif entry.get("MESSAGE_ID") == STARTED and failed is not None and started is None:
            started = at
    return failed, started


def repair_jobs_running(lab, node_id):
    """How many kubesalt_heal.repair jobs run on the node now (None: the minion did not say)."""
    running = salt(lab, node_id, "saltutil.running", timeout=30)
    if not isinstance(running, list):
        return None
    return sum(1 for job in running if job.get("fun") == "kubesalt_heal.repair")
