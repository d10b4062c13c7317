"""
kubesalt_etcd_snapshot: this master's minion takes an etcd snapshot on a schedule.

:func:`scheduled` keeps a job of the minion's own schedule (persisted in its
``_schedule.conf``) that runs ``kubesalt_etcd_snapshot.save`` every ``minutes``; 0 removes
it. Unlike ``schedule.present``, it says in ``test=True`` what it would change (result
None) instead of succeeding without changes.

.. code-block:: yaml

    kubesalt-etcd-snapshot-scheduled:
      kubesalt_etcd_snapshot.scheduled:
        - minutes: 60
"""

import kubesalt_core.loader

JOB = "kubesalt-etcd-snapshot"
FUNCTION = "kubesalt_etcd_snapshot.save"


def __virtual__():
    return kubesalt_core.loader.state_virtual(__salt__, "kubesalt_etcd_snapshot.save")


def _wanted(minutes):
    return {"function": FUNCTION, "minutes": int(minutes), "maxrunning": 1}


def _differs(current, wanted):
    return {k: v for k, v in wanted.items() if (current or {}).get(k) != v}


def scheduled(name=JOB, minutes=60):
    """
    The minion's schedule has job ``name`` running ``kubesalt_etcd_snapshot.save`` every
    ``minutes`` (at most one at a time); with ``minutes`` 0 it has no such job.

    name
        The schedule job's name. Default: ``kubesalt-etcd-snapshot``.
    minutes
        The interval; 0 removes the job.
    """
    ret = {"name": name, "result": True, "comment": "", "changes": {}}
    try:
        minutes = int(minutes)
    except (TypeError, ValueError):
        minutes = -1
    if minutes < 0:
        ret["result"] = False
        ret["comment"] = "Invalid value for minutes: expected 0 (none) or more minutes"
        return ret
    jobs = __salt__["schedule.list"](return_yaml=False)
    current = jobs.get(name) if isinstance(jobs, dict) else None
    if minutes == 0:
        action, changes = ("schedule.delete", {}), {"removed": name} if current else {}
        done = f"no snapshot is scheduled ({name} is not in the schedule)"
        would = f"would remove {name} from the schedule"
    else:
        wanted = _wanted(minutes)
        differs = _differs(current, wanted)
        verb = "schedule.add" if current is None else "schedule.modify"
        action = (verb, wanted)
        changes = {"added" if current is None else "changed": differs} if differs else {}
        done = f"an etcd snapshot is scheduled every {minutes} minutes"
        would = f"would schedule an etcd snapshot every {minutes} minutes"
    if not changes:
        ret["comment"] = done
        return ret
    ret["changes"] = changes
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = would
        return ret
    function, kwargs = action
    outcome = __salt__[function](name, persist=True, **kwargs)
    if not outcome.get("result"):
        ret["changes"] = {}
        ret["result"] = False
    ret["comment"] = outcome.get("comment", "")
    return ret
