"""
kubesalt_etcd_restore: whether ``kubesalt.orch.etcd_restore`` may restore etcd from a
snapshot, asked of the cluster, and the restore it will run.

:func:`plan` runs when the orchestration is rendered (also with ``test=True``): it checks
the arguments, that every master answers and has etcdutl, that the snapshot verifies on
the master that holds it (its sha256 against its record and, when given, the one the
operator expects; etcdutl reads it), and that etcd has indeed lost its quorum (unless
forced). Any finding means the orchestration changes nothing.

CLI Example:

.. code-block:: bash

    salt-run kubesalt_etcd_restore.plan snapshot=lab-20261204T220000Z-master-1.db
    salt-run state.orchestrate kubesalt.orch.etcd_restore test=True \\
        pillar='{"snapshot": "lab-20261204T220000Z-master-1.db"}'
"""

from datetime import UTC, datetime

import salt.client

import kubesalt_core.artifact
import kubesalt_core.etcd_restore
import kubesalt_core.etcd_snapshot
import kubesalt_core.pillar

__virtualname__ = "kubesalt_etcd_restore"

TIMEOUT = 60


def __virtual__():
    return __virtualname__


def _answer(client, minion, function, arg=()):
    """``(answer, None)`` from ``function`` on ``minion``, or ``(None, what went wrong)``."""
    ret = client.cmd(minion, function, arg=list(arg), timeout=TIMEOUT, full_return=True)
    answer = ret.get(minion)
    if not isinstance(answer, dict):
        return None, "no answer"
    if answer.get("retcode", 0) != 0:
        return None, str(answer.get("ret"))
    return answer["ret"], None


def plan(snapshot=None, source=None, sha256=None, force=False):
    """
    The restore of every master's etcd from ``snapshot``: ``{problems, snapshot, source,
    sha256, revision, keys, masters, others, token, steps}``. Any problem means the
    orchestration changes nothing.

    snapshot
        The snapshot's file name (``kubesalt_etcd_snapshot.list`` on a master).
    source
        The master that holds it; by default the member its name says took it.
    sha256
        The digest it must have (by default the one recorded beside it).
    force
        Restore even though etcd still has a quorum (every write since the snapshot is lost).

    CLI Example:

    .. code-block:: bash

        salt-run kubesalt_etcd_restore.plan snapshot=lab-20261204T220000Z-master-1.db
    """
    snapshot = str(snapshot or "")
    source = str(source or kubesalt_core.etcd_snapshot.member_in(snapshot) or "")
    with salt.client.get_local_client(mopts=__opts__) as client:
        return _plan(client, snapshot, source, sha256, bool(force))


def _plan(client, snapshot, source, sha256, force):
    decided = {"snapshot": snapshot, "source": source, "masters": [], "steps": []}
    config, error = _answer(client, source, "kubesalt.config") if source else (None, None)
    if config is None:
        # The masters come from the source's pillar; without it, only the arguments tell.
        problems = kubesalt_core.etcd_restore.input_problems([], snapshot, source, sha256)
        if source and error:
            problems = [f"{source}, the master holding the snapshot, did not answer: {error}"]
        return {**decided, "problems": problems}
    masters = [mid for mid, _ in kubesalt_core.pillar.masters(config)]
    decided["masters"] = masters
    problems = kubesalt_core.etcd_restore.input_problems(masters, snapshot, source, sha256)
    if problems:
        return {**decided, "problems": problems}
    etcdutl = kubesalt_core.artifact.executable(config, "etcd", "etcdutl")
    access = client.cmd(masters, "file.access", arg=[etcdutl, "x"], tgt_type="list",
                        timeout=TIMEOUT)  # fmt: skip
    problems = kubesalt_core.etcd_restore.reach_problems(
        masters, sorted(access), sorted(m for m, ok in access.items() if ok is not True)
    )
    verified, error = _answer(client, source, "kubesalt_etcd_snapshot.verify", [snapshot])
    if error:
        problems.append(f"snapshot {snapshot} on {source}: {error}")
    if problems:
        return {**decided, "problems": problems}
    health, _ = _answer(client, source, "kubesalt_etcd.health")
    refused = kubesalt_core.etcd_restore.refusal(health, verified, sha256, force)
    if refused:
        return {**decided, "problems": [refused]}
    token = kubesalt_core.etcd_restore.new_token(config["cluster"]["name"], datetime.now(UTC))
    others = [m for m in masters if m != source]
    return {
        **decided,
        "problems": [],
        "sha256": verified["sha256"],
        "revision": verified["revision"],
        "keys": verified["keys"],
        "others": others,
        "token": token,
        "forced": bool(health and health.get("healthy")),
        "steps": kubesalt_core.etcd_restore.steps(snapshot, source, others, masters, token),
    }
