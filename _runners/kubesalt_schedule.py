"""
kubesalt_schedule: the master's scheduled highstate, and the drift report of what it changed.

``conf/master.d/kubesalt.conf`` schedules :func:`highstate` (with a splay and at most one
run at a time). A run applies the highstate in the order a cluster needs it (masters, then
workers, then routers, then minions without a kubesalt role), asking each minion's roles
from pillar through ``kubesalt.roles``. A minion on which an orchestration paused the
repairs of a unit (``kubesalt_heal.pause``: ``kubesalt.orch.etcd_restore`` keeps the
apiservers stopped) is skipped, since its highstate would start that unit; the record says
why. What every run changed, failed or skipped is appended to
``<cachedir>/kubesalt/drift.jsonl`` on the master; on a converged cluster a run changes
nothing, so any change it made is drift someone or something caused.

CLI Example:

.. code-block:: bash

    salt-run kubesalt_schedule.drift             # what the last scheduled runs changed
    salt-run kubesalt_schedule.drift runs=20 show_all=True
    salt-run kubesalt_schedule.highstate         # one run now, recorded like a scheduled one
"""

import datetime
import json
import logging
import os
import time

import salt.client
from salt.exceptions import SaltInvocationError

import kubesalt_core.files
import kubesalt_core.heal

log = logging.getLogger(__name__)

__virtualname__ = "kubesalt_schedule"

WAVES = ("master", "worker", "router")
KEEP_RUNS = 500


def __virtual__():
    return __virtualname__


def _drift_file():
    return os.path.join(__opts__["cachedir"], "kubesalt", "drift.jsonl")


def waves(roles):
    """``{minion: [roles]}`` -> lists of minions to apply in order (a minion goes in the
    wave of its first role in WAVES; no kubesalt role: last)."""
    ordered = [[] for _ in range(len(WAVES) + 1)]
    for minion in sorted(roles):
        mine = roles[minion] if isinstance(roles[minion], list) else []
        index = next((i for i, role in enumerate(WAVES) if role in mine), len(WAVES))
        ordered[index].append(minion)
    return [wave for wave in ordered if wave]


def summarize(ret):
    """One minion's ``state.apply`` return -> ``{"changed": [ids], "failed": [ids]}``, or
    ``{"error": text}`` when it did not run (render error, no answer)."""
    if not isinstance(ret, dict):
        text = "; ".join(map(str, ret)) if isinstance(ret, list) else str(ret)
        return {"error": text or "no answer"}
    changed, failed = [], []
    for key, state in sorted(ret.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
        name = state.get("__id__") or key
        if state.get("result") is False:
            failed.append(name)
        if state.get("changes"):
            changed.append(name)
    return {"changed": changed, "failed": failed}


def held(answers):
    """``{minion: kubesalt_heal.paused answer}`` -> ``{minion: why it is left alone}``, for the
    minions with a paused unit (an answer that is not a mapping holds nothing)."""
    out = {}
    for minion, paused in sorted(answers.items()):
        if isinstance(paused, dict) and paused:
            out[minion] = "; ".join(
                f"{unit} paused by {pause.get('by')} until {pause.get('until')}"
                for unit, pause in sorted(paused.items())
            )
    return out


def highstate(timeout=900):
    """
    Apply the highstate to every minion in waves (see the module docstring), record what
    each changed in the drift report, and return that record.

    timeout
        Seconds a wave may take. Default: 900.

    CLI Example:

    .. code-block:: bash

        salt-run kubesalt_schedule.highstate
    """
    client = salt.client.get_local_client(mopts=__opts__)
    started = time.time()
    roles = client.cmd("*", "kubesalt.roles", timeout=30)
    minions = {}
    for wave in waves(roles):
        paused = held(client.cmd(wave, "kubesalt_heal.paused", tgt_type="list", timeout=30))
        for minion, why in paused.items():
            log.warning("kubesalt_schedule: %s skipped: %s", minion, why)
            minions[minion] = {"skipped": why}
        wave = [minion for minion in wave if minion not in paused]
        if not wave:
            continue
        ret = client.cmd(
            wave,
            "state.apply",
            tgt_type="list",
            kwarg={"queue": kubesalt_core.heal.STATE_QUEUE},
            timeout=timeout,
        )
        for minion in wave:
            minions[minion] = summarize(ret.get(minion, "no answer"))
    record = {
        "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "seconds": round(time.time() - started, 1),
        "minions": minions,
    }
    kubesalt_core.files.append_line(_drift_file(), json.dumps(record, sort_keys=True), KEEP_RUNS)
    return record


def drift(runs=5, show_all=False):
    """
    What the last ``runs`` scheduled highstates changed or failed, per minion, newest last.
    Minions a run left as they were are listed under ``unchanged`` (or in full with
    ``show_all=True``).

    CLI Example:

    .. code-block:: bash

        salt-run kubesalt_schedule.drift
        salt-run kubesalt_schedule.drift runs=20
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise SaltInvocationError(f"runs: expected a whole number of at least 1, got {runs!r}")
    try:
        with open(_drift_file(), encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
    report = []
    for record in records[-runs:]:
        entry = {"started": record["started"], "seconds": record["seconds"]}
        quiet = []
        for minion, summary in sorted(record["minions"].items()):
            if show_all or any(summary.get(k) for k in ("changed", "failed", "error", "skipped")):
                entry[minion] = summary
            else:
                quiet.append(minion)
        entry["unchanged"] = quiet
        report.append(entry)
    return report
