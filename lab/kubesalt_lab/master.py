"""The lab's salt-master: runs on the host from the project's venv, listens only on the lab
bridge address, serves this repo's states/ and pillar/. Minion keys are made by the lab and
accepted by id before any minion starts (no auto-accept).

Pillar is the repo's ``kubesalt``, unless :func:`override_pillar` replaced some of its
values in a copy the lab owns: a test or an operator trying a change (a version bump, an
archive URL) never edits the repo's pillar.
"""

import json
import shutil

import yaml
from salt import crypt as salt_crypt

from kubesalt_lab import pillar
from kubesalt_lab.config import REPO, LabError
from kubesalt_lab.system import alive, cmdline, read_pid, run, start_daemon, stop_pids

RET_PORT = 4506


def _pid_file(lab):
    return lab.run_dir / "pids" / "salt-master"


def master_pid(lab):
    pid = read_pid(_pid_file(lab))
    if pid and alive(pid) and str(lab.master_dir) in " ".join(cmdline(pid)):
        return pid
    return None


SNIPPET_ROOT = "/srv/kubesalt"


def master_snippet():
    """conf/master.d/kubesalt.conf with its checkout path pointed at this repo: the lab (and
    the tests) run what users copy (peer, reactor, schedule)."""
    text = (REPO / "conf" / "master.d" / "kubesalt.conf").read_text()
    return yaml.safe_load(text.replace(SNIPPET_ROOT, str(REPO)))


def minion_snippet():
    """conf/minion.d/kubesalt.conf, as every lab node runs it (the journal beacon)."""
    return yaml.safe_load((REPO / "conf" / "minion.d" / "kubesalt.conf").read_text())


def peer_config():
    """The ``peer`` block of conf/master.d/kubesalt.conf."""
    return master_snippet()["peer"]


def _overlay_dir(lab):
    return lab.master_dir / "pillar"


def lab_pillar(lab):
    """The pillar layers the master serves (see kubesalt_lab.pillar)."""
    return pillar.LabPillar(_overlay_dir(lab))


def override_pillar(lab, settings, skip=()):
    """Replace values of the repo's ``kubesalt`` pillar on every node, for a test or a try.

    settings
        ``{"<colon path under kubesalt>": value}``, e.g. ``{"versions:etcd": "3.5.1"}``;
        each value replaces what is there (a mapping is not merged). ``{}`` restores the
        repo's pillar (with the lab's built artifacts).

    Refreshes every minion's pillar but those in ``skip`` (hosts that are down); returns
    {minion: refreshed}. The repo is not touched.
    """
    lab_pillar(lab).write(overrides=settings)
    return refresh_pillar(lab, skip)


def refresh_pillar(lab, skip=()):
    nodes = [n for n in lab.nodes if n.id not in skip]
    ids = ",".join(n.id for n in nodes)
    ret = run_salt(lab, ids, "saltutil.refresh_pillar", "wait=True", timeout=60, list_target=True)
    return {n.id: ret.get(n.id) is True for n in nodes}


def write_config(lab):
    conf = {
        "id": "kubesalt-lab-master",
        "interface": lab.bridge_ip,
        "root_dir": str(lab.master_dir),
        "pki_dir": str(lab.master_dir / "pki"),
        "cachedir": str(lab.master_dir / "cache"),
        "sock_dir": str(lab.master_dir / "sock"),
        "pidfile": str(lab.master_dir / "salt-master.pid"),
        "log_file": str(lab.master_dir / "master.log"),
        "key_logfile": str(lab.master_dir / "key.log"),
        "log_level_logfile": "info",
        "user": "root",
        "open_mode": False,
        "auto_accept": False,
        "file_roots": {"base": [str(REPO / "states")]},
        # The lab's own top file comes first (see override_pillar).
        "pillar_roots": {"base": [str(_overlay_dir(lab)), str(REPO / "pillar")]},
        "timeout": 30,
        # How long the CLI asks minions that have not returned whether the job still runs;
        # the default (10 s) makes every test.ping while minions start take 10 s and more.
        "gather_job_timeout": 3,
    }
    # From conf/master.d: nodes send CSRs to the CA host by peer publication; the journal
    # beacon's events go to the repair reactor; the scheduled highstate.
    snippet = master_snippet()
    conf.update({key: snippet[key] for key in ("peer", "reactor", "schedule", "worker_threads")})
    lab.master_dir.mkdir(parents=True, exist_ok=True)
    if not (_overlay_dir(lab) / "top.sls").exists():
        lab_pillar(lab).write()
    (lab.master_dir / "master").write_text(yaml.safe_dump(conf))


def write_node_config(lab, node):
    etc_salt = lab.node_dir(node) / "etc-salt"
    etc_salt.mkdir(parents=True, exist_ok=True)
    conf = {
        "id": node.id,
        "master": lab.bridge_ip,
        "log_level": "warning",
        "log_level_logfile": "info",
        "acceptance_wait_time": 1,
        "acceptance_wait_time_max": 5,
        **minion_snippet(),
    }
    (etc_salt / "minion").write_text(yaml.safe_dump(conf))
    launch = lab.run_dir / "launch" / "bin"
    launch.mkdir(parents=True, exist_ok=True)
    launcher = launch / "salt-minion"
    launcher.write_text(f'#!/bin/sh\nexec {lab.venv}/bin/salt-minion "$@"\n')
    launcher.chmod(0o755)


def _keypair(directory, name):
    """Write <name>.pem (0600) and <name>.pub unless the pair exists."""
    if (directory / f"{name}.pem").exists():
        return
    private, public = salt_crypt.gen_keys(2048)
    pem = directory / f"{name}.pem"
    pem.touch(mode=0o600)
    pem.write_text(private if isinstance(private, str) else private.decode())
    (directory / f"{name}.pub").write_text(public if isinstance(public, str) else public.decode())


def ensure_keys(lab):
    """Master key pair, and one key pair per node whose public half the master accepts."""
    pki = lab.master_dir / "pki"
    (pki / "minions").mkdir(parents=True, exist_ok=True)
    _keypair(pki, "master")
    for node in lab.nodes:
        minion_pki = lab.node_dir(node) / "etc-salt" / "pki" / "minion"
        minion_pki.mkdir(parents=True, exist_ok=True)
        _keypair(minion_pki, "minion")
        shutil.copyfile(minion_pki / "minion.pub", pki / "minions" / node.id)
        # The minion trusts exactly this master from its first connection.
        shutil.copyfile(pki / "master.pub", minion_pki / "minion_master.pub")


def start(lab):
    pid = master_pid(lab)
    if pid:
        return pid
    return start_daemon(
        [lab.venv / "bin" / "salt-master", "-c", lab.master_dir],
        lab.master_dir / "stdout.log",
        _pid_file(lab),
        lab.bridge_ip,
        RET_PORT,
        "salt-master",
    )


def stop(lab):
    pid = master_pid(lab)
    if pid:
        # The master was started in its own session: its workers share its process group.
        stop_pids([pid], grace=10, group=True)
    _pid_file(lab).unlink(missing_ok=True)


def cli(lab, program):
    """The argv that starts Salt's ``program`` (salt, salt-run) against the lab master.

    Its log goes to ``cli.log``, not the daemon's ``master.log`` (Salt's default for its
    command line tools): a quick test.ping whose publication outlasts its few seconds while
    the master is busy is the lab's own impatience, not a request the master let stall.
    """
    return [
        lab.venv / "bin" / program,
        "-c",
        lab.master_dir,
        f"--log-file={lab.master_dir / 'cli.log'}",
        "--log-file-level=info",
    ]


def run_salt(lab, target, fun, *args, timeout=300, job_timeout=None, list_target=False):
    """Run `salt` on the lab master; returns the decoded {minion: return} mapping.

    ``timeout`` bounds the whole command; salt's own job timeout (``job_timeout``, by
    default 15 s less) is shorter, so salt reports the minions that did answer instead of
    being cut off.
    """
    job_timeout = job_timeout or max(5, timeout - 15)
    argv = [
        *cli(lab, "salt"),
        "--out=json",
        "--static",
        f"--timeout={job_timeout}",
    ]
    if list_target:
        argv.append("-L")
    proc = run([*argv, target, fun, *args], check=False, timeout=timeout)
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        return {"_error": (proc.stdout + proc.stderr).strip()[-2000:]}


def run_runner(lab, fun, *args, timeout=300):
    """Run `salt-run <fun> <args>` on the lab master; returns what the runner returned."""
    proc = run([*cli(lab, "salt-run"), "--out=json", fun, *args], check=False, timeout=timeout)
    try:
        return json.loads(proc.stdout or "null")
    except json.JSONDecodeError:
        raise LabError(f"salt-run {fun}: {(proc.stdout + proc.stderr).strip()[-2000:]}") from None


def ping(lab, nodes):
    """{node id: answered} for a quick test.ping; a minion still starting counts as False."""
    ids = ",".join(n.id for n in nodes)
    try:
        ret = run_salt(lab, ids, "test.ping", timeout=20, job_timeout=3, list_target=True)
    except LabError:  # the CLI itself hung: count nobody as answering, ask again later
        ret = {}
    return {n.id: ret.get(n.id) is True for n in nodes}


def orchestrate(lab, sls, pillar=None, timeout=600, test=False):
    """`salt-run state.orchestrate <sls>` on the lab master; returns (ok, {state id: result}).

    ``ok`` is True only when every orchestration step succeeded. ``test`` runs it with
    ``test=True``.
    """
    argv = [
        *cli(lab, "salt-run"),
        "--out=json",
        "state.orchestrate",
        sls,
    ]
    if pillar is not None:
        argv.append(f"pillar={json.dumps(pillar)}")
    if test:
        argv.append("test=True")
    proc = run(argv, check=False, timeout=timeout)
    try:
        data = json.loads(proc.stdout or "{}").get("data", {})
    except json.JSONDecodeError:
        return False, {"_error": (proc.stdout + proc.stderr).strip()[-2000:]}
    steps = {}
    for states in data.values():
        if not isinstance(states, dict):
            return False, {"_error": states}
        for state in states.values():
            steps[state["__id__"]] = {
                "result": state["result"],
                "name": state.get("name", ""),
                "comment": state["comment"],
                "changes": state.get("changes", {}),  # what each targeted minion returned
                "seconds": round(state.get("duration", 0) / 1000, 1),
            }
    ok = proc.returncode == 0 and bool(steps) and all(s["result"] for s in steps.values())
    return ok, steps


def failed_steps(steps, limit=800):
    """What went wrong in :func:`orchestrate`'s steps, short enough to read in a test's
    message: each failed step's comment and, per minion, the comments of its failed states
    (or what the minion said instead of states: a refusal, an exception)."""
    failed = {}
    for step_id, step in steps.items():
        if step.get("result"):
            continue
        minions = {}
        returns = (step.get("changes") or {}).get("ret") if isinstance(step, dict) else None
        for minion, said in (returns or {}).items():
            if isinstance(said, dict):
                bad = [s.get("comment", "") for s in said.values() if not s.get("result", True)]
                if bad:
                    minions[minion] = [str(c)[:limit] for c in bad]
            else:
                minions[minion] = str(said)[:limit]
        failed[step_id] = {"comment": str(step.get("comment", step))[:limit], "minions": minions}
    return failed
