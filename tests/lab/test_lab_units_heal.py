"""Self-healing on the lab's hosts, after test_lab_units converged them: systemd gives up on a
unit (kubesalt_lab.heal.give_up), the journal beacon tells the master, the reactor sends
kubesalt_heal.repair back, the unit is active again with nobody doing anything; forged events get
nothing done; a storm of events makes one repair; a missing certificate is renewed by the
re-apply; a unit that cannot be fixed is escalated, not looped on; the master's scheduled
highstate reports drift.

The breakages of one phase run at once on different hosts (the suite has a time budget);
each test then checks one of them.
"""

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubesalt_lab import converge, heal, master, overview
from kubesalt_lab.system import wait_until

BROKEN_DROP_IN = "/run/systemd/system/containerd.service.d/zz-kubesalt-test-broken.conf"
ETCD_CERT = "/etc/kubernetes/pki/etcd-server.crt"
ETCD_CERT_COPY = "/etc/etcd/pki/server.crt"  # etcd's own, which it reads


def _all_at_once(**episodes):
    """Run each ``name=callable`` in its own thread; their results by name (the first
    exception is raised)."""
    with ThreadPoolExecutor(max_workers=len(episodes)) as pool:
        futures = {name: pool.submit(episode) for name, episode in episodes.items()}
        return {name: future.result(timeout=300) for name, future in futures.items()}


@pytest.fixture(scope="module")
def healing(lab_up):
    lab, _ = lab_up
    units = [
        ("master-1", "etcd.service"),
        ("master-2", "etcd.service"),
        ("master-3", "etcd.service"),
        ("master-1", "kube-apiserver.service"),
        ("master-3", "calico-typha.service"),
        ("worker-1", "containerd.service"),
        ("worker-2", "containerd.service"),
    ]
    if any(heal.unit_props(lab, n, u)["ActiveState"] != "active" for n, u in units):
        converge.apply(lab, lambda _message: None)
    # A clean budget for every unit this module breaks (earlier tests may have used some).
    for node_id, unit in units:
        assert heal.salt(lab, node_id, "kubesalt_heal.reset", unit) == {"unit": unit, "reset": True}
    return lab


def _gave_up(lab, node_id, unit):
    since = time.time()
    heal.give_up(lab, node_id, unit)
    heal.wait_active(lab, node_id, unit)
    return since, heal.wait_repair_recorded(lab, node_id, unit, since)


def _gave_up_while_the_minion_was_down(lab, node_id, unit):
    since = time.time()
    heal.sh(lab, node_id, "systemctl stop kubesalt-lab-minion.service")
    heal.give_up(lab, node_id, unit)
    wait_until(
        lambda: heal.unit_props(lab, node_id, unit)["ActiveState"] == "failed",
        30,
        interval=0.5,
        what=f"systemd to give up on {unit}",
    )
    # The failure is in the journal after the cursor the beacon saved before it stopped.
    heal.sh(lab, node_id, "systemctl start kubesalt-lab-minion.service")
    heal.wait_active(lab, node_id, unit, timeout=90)
    return since, heal.wait_repair_recorded(lab, node_id, unit, since)


def _storm(lab, node_id, unit):
    since = time.time()
    heal.give_up(lab, node_id, unit)
    # The beacon reports the failure; 50 more copies of it arrive at once.
    event = {"id": node_id, "unit": unit, "result": "start-limit-hit"}
    heal.forge(lab, node_id, [(heal.BEACON_TAG.format(node=node_id), event)] * 50)
    heal.wait_active(lab, node_id, unit)
    wait_until(
        lambda: heal.repair_jobs_running(lab, node_id) == 0,
        120,
        interval=1,
        what=f"the storm's jobs to end on {node_id}",
    )
    return since, heal.wait_repair_recorded(lab, node_id, unit, since)


@pytest.fixture(scope="module")
def first_failures(healing):
    lab = healing
    return _all_at_once(
        etcd=lambda: _gave_up(lab, "master-2", "etcd.service"),
        apiserver=lambda: _gave_up(lab, "master-1", "kube-apiserver.service"),
        typha=lambda: _gave_up(lab, "master-3", "calico-typha.service"),
        minion_down=lambda: _gave_up_while_the_minion_was_down(
            lab, "worker-1", "containerd.service"
        ),
        storm=lambda: _storm(lab, "worker-2", "containerd.service"),
    )


def test_a_unit_systemd_gave_up_on_is_active_again_without_anyone(healing, first_failures):
    lab = healing
    since, episode = first_failures["etcd"]
    # systemd really gave up, and kubesalt (not systemd) brought it back ...
    said = heal.sh(
        lab, "master-2", f"journalctl -o cat _PID=1 UNIT=etcd.service --since=@{int(since)}"
    )
    assert "Start request repeated too quickly" in said.stdout
    failed, started = heal.time_to_repair(lab, "master-2", "etcd.service", since)
    assert failed < started
    # ... by one restart that held (for heal:hold_seconds), with what the journal said.
    (repair,) = episode
    assert (repair["action"], repair["held"]) == ("restart", True)
    assert repair["detail"].startswith("restarted; held")
    members = heal.salt(lab, "master-1", "kubesalt_etcd.status")
    assert [m["healthy"] for m in members] == [True, True, True], members


def test_an_apiserver_repair_holds_only_once_readyz_answers(healing, first_failures):
    since, episode = first_failures["apiserver"]
    said = heal.sh(
        healing,
        "master-1",
        f"journalctl -o cat _PID=1 UNIT=kube-apiserver.service --since=@{int(since)}",
    )
    assert "Start request repeated too quickly" in said.stdout
    (repair,) = episode
    assert (repair["action"], repair["held"]) == ("restart", True)
    # Held means the apiserver's own /readyz said ok, not merely the process up.
    assert "readyz: 200 ok" in repair["detail"], repair["detail"]
    answer = heal.salt(healing, "master-1", "kubesalt_unit.health", "kube-apiserver")
    assert answer["kube-apiserver.service"]["healthy"] is True


def test_typha_is_repaired_and_ready_again(healing, first_failures):
    _, episode = first_failures["typha"]
    (repair,) = episode
    assert (repair["action"], repair["held"]) == ("restart", True)
    assert "readiness: 200" in repair["detail"], repair["detail"]


def test_a_failure_while_the_minion_was_down_is_repaired_once_it_is_back(first_failures):
    _, episode = first_failures["minion_down"]
    assert [(r["action"], r["held"]) for r in episode] == [("restart", True)]


def test_a_storm_of_events_makes_one_repair(healing, first_failures):
    _, episode = first_failures["storm"]
    assert [(r["action"], r["held"]) for r in episode] == [("restart", True)]
    assert heal.salt(healing, "worker-2", "test.ping", timeout=20) is True


def _new_records(lab, node_id, unit, count):
    def answered():
        records = heal.history(lab, node_id, unit)
        return records[count:] if len(records) > count else None

    return wait_until(answered, 30, interval=0.5, what=f"{node_id} to answer for {unit}")


def test_a_forged_event_naming_another_minion_gets_nothing_done(healing):
    lab = healing
    before = heal.unit_props(lab, "master-1", "etcd.service")
    count = len(heal.history(lab, "master-1", "etcd.service"))
    forged = {"id": "master-1", "unit": "etcd.service", "result": "start-limit-hit"}
    heal.forge(lab, "worker-2", [(heal.BEACON_TAG.format(node="master-1"), forged)])
    (record,) = _new_records(lab, "master-1", "etcd.service", count)
    assert (record["action"], record["detail"]) == ("none", "ActiveState=active: nothing to repair")
    assert (
        heal.unit_props(lab, "master-1", "etcd.service")["InvocationID"] == before["InvocationID"]
    )


def test_a_forged_event_naming_an_unmanaged_unit_is_refused(healing):
    lab = healing
    minion = "kubesalt-lab-minion.service"  # a real, running unit kubesalt does not manage
    before = heal.unit_props(lab, "worker-2", minion)
    count = len(heal.history(lab, "worker-2", minion))
    forged = {"id": "worker-2", "unit": minion}
    heal.forge(lab, "worker-2", [(heal.BEACON_TAG.format(node="worker-2"), forged)])
    (record,) = _new_records(lab, "worker-2", minion, count)
    assert (record["action"], record["detail"]) == ("refused", "not a managed unit")
    assert heal.unit_props(lab, "worker-2", minion)["InvocationID"] == before["InvocationID"]


@pytest.fixture(scope="module")
def impatient_policy(healing):
    """A policy that gives up within seconds (the defaults take minutes of backoff)."""
    lab = healing
    policy = {
        "backoff_seconds": [0, 1],
        "budget_attempts": 3,
        "window_seconds": 600,
        "hold_seconds": 3,
        "restarts_before_reapply": 1,
    }
    assert all(master.override_pillar(lab, {"heal": policy}).values())
    yield lab
    assert all(master.override_pillar(lab, {}).values())


def _missing_certificate(lab, node_id):
    since = time.time()
    # etcd cannot start without its serving certificate (it reads its own copy): a restart
    # cannot help; the component's state (kubesalt.etcd, which includes kubesalt.pki)
    # issues a new one and gives etcd its copy.
    heal.give_up(lab, node_id, "etcd.service", before_kill=f"rm {ETCD_CERT} {ETCD_CERT_COPY}")
    return heal.wait_repair_recorded(lab, node_id, "etcd.service", since, timeout=120)


def _unfixable(lab, node_id):
    unit = "containerd.service"
    # The first phase's repair of this unit counts against the budget too: start over.
    assert heal.salt(lab, node_id, "kubesalt_heal.reset", unit)["reset"] is True
    listen = subprocess.Popen(
        [
            *master.cli(lab, "salt-run"),
            "--out=json",
            "state.event",
            "tagmatch=kubesalt/unit/escalated",
            "count=1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # the listener is on the bus
        # Something kubesalt does not manage (a runtime drop-in) breaks every start once the
        # start limit is used up: restarts cannot hold, nor can a re-apply.
        breaks = (
            f"mkdir -p {BROKEN_DROP_IN.rsplit('/', 1)[0]}; "
            f"printf '[Service]\\nExecStartPre=/bin/false\\n' > {BROKEN_DROP_IN}; "
            "systemctl daemon-reload"
        )
        heal.give_up(lab, node_id, unit, before_kill=breaks)
        out, _ = listen.communicate(timeout=120)
    finally:
        if listen.poll() is None:
            listen.kill()
    actions = [r["action"] for r in heal.history(lab, node_id, unit)]
    # Never a loop: systemd gives up on the unit again, the beacon reports it, the repair
    # looks and stands down.
    count = len(heal.history(lab, node_id, unit))
    heal.give_up(lab, node_id, unit)
    (after,) = _new_records(lab, node_id, unit, count)
    state = heal.unit_props(lab, node_id, unit)["ActiveState"]
    heal.sh(lab, node_id, f"rm -f {BROKEN_DROP_IN}; systemctl daemon-reload")
    assert heal.salt(lab, node_id, "kubesalt_heal.reset", unit)["reset"] is True
    heal.sh(lab, node_id, f"systemctl reset-failed {unit}; systemctl restart {unit}")
    heal.wait_active(lab, node_id, unit)
    # state.event prints "<tag>\t<data as JSON>" per event, then the runner's own return.
    tag, _, payload = out.strip().splitlines()[0].partition("\t")
    return {
        "tag": tag,
        "event": json.loads(payload),
        "actions": actions,
        "after": after,
        "state_after": state,
    }


@pytest.fixture(scope="module")
def second_failures(impatient_policy):
    lab = impatient_policy
    return _all_at_once(
        certificate=lambda: _missing_certificate(lab, "master-3"),
        unfixable=lambda: _unfixable(lab, "worker-1"),
    )


def test_a_missing_certificate_is_renewed_by_the_reapply(impatient_policy, second_failures):
    lab = impatient_policy
    episode = second_failures["certificate"]
    assert [(r["action"], r["held"]) for r in episode] == [("restart", False), ("reapply", True)]
    assert episode[-1]["detail"].startswith("state.apply kubesalt.etcd: ")
    assert heal.sh(lab, "master-3", f"test -s {ETCD_CERT} -a -s {ETCD_CERT_COPY}").returncode == 0
    members = heal.salt(lab, "master-1", "kubesalt_etcd.status")
    assert [m["healthy"] for m in members] == [True, True, True], members


def test_a_unit_that_cannot_be_fixed_is_escalated_once_not_looped_on(second_failures):
    seen = second_failures["unfixable"]
    event = seen["event"]
    assert seen["tag"] == "kubesalt/unit/escalated"
    assert event["id"] == "worker-1"  # the master's stamp: the authenticated sender
    assert event["data"]["unit"] == "containerd.service"
    assert "3 repairs within 600s did not hold" in event["data"]["reason"]
    assert any("ExecStartPre" in line or "Failed" in line for line in event["data"]["journal"])
    assert seen["actions"][-4:] == ["restart", "reapply", "restart", "escalate"]
    assert (seen["after"]["action"], seen["after"]["held"]) == ("none", False)
    assert seen["after"]["detail"].startswith("escalated already in this window")
    assert seen["state_after"] == "failed"


def _salt_run(lab, *args, timeout=300):
    proc = subprocess.run(
        [*master.cli(lab, "salt-run"), "--out=json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(proc.stdout)


def test_the_master_schedules_highstate_and_reports_drift(healing):
    lab = healing
    schedule = _salt_run(lab, "salt.cmd", "config.get", "schedule")
    assert schedule["kubesalt-highstate"]["function"] == "kubesalt_schedule.highstate"
    assert schedule["kubesalt-highstate"]["maxrunning"] == 1
    # Drift: someone edits a file kubesalt manages on worker-2.
    heal.sh(lab, "worker-2", "echo '# edited by hand' >> /etc/containerd/config.toml")
    # An orchestration holds master-3's apiserver (as a restore keeps it stopped): the run
    # sends master-3 no highstate, which would start it, and records why.
    apiserver = "kube-apiserver.service"
    paused = heal.salt(lab, "master-3", "kubesalt_heal.pause", apiserver, "a lab test")
    assert paused["by"] == "a lab test", paused
    try:
        run = _salt_run(lab, "kubesalt_schedule.highstate")
    finally:
        assert heal.salt(lab, "master-3", "kubesalt_heal.resume", apiserver) is True
    assert sorted(run["minions"]) == sorted(n.id for n in lab.nodes)
    assert heal.salt(lab, "master-3", "kubesalt_heal.paused") == {}
    (last,) = _salt_run(lab, "kubesalt_schedule.drift", "runs=1")
    assert last["started"] == run["started"]
    assert last["master-3"]["skipped"].startswith(f"{apiserver} paused by a lab test until ")
    assert last["worker-2"]["failed"] == []
    assert "kubesalt-config-/etc/containerd/config.toml-managed" in last["worker-2"]["changed"]
    assert "kubesalt-unit-containerd-running" in last["worker-2"]["changed"]
    others = sorted(n.id for n in lab.nodes if n.id not in ("worker-2", "master-3"))
    assert sorted(last["unchanged"]) == others


def test_status_shows_the_recent_repairs(healing, second_failures):
    rows = overview.status(healing)["repairs"]  # the newest 10 across the nodes
    assert ["worker-1", "containerd.service", "escalate", "no"] in [
        [row[0], row[2], row[3], row[4]] for row in rows
    ], rows
    assert [row[1] for row in rows] == sorted(row[1] for row in rows)
