"""Bringing etcd back from one snapshot when its quorum is lost for good: whether a restore
may go ahead, the new cluster every member is restored into, and each member's command.

Every master is restored from the same snapshot (same revision, same keys) into a new
cluster: a new initial-cluster token (so the restored members never talk to what is left
of the old cluster) and the masters pillar lists as its members. A member's old data
directory is moved aside, never deleted.

No Salt dunders and no I/O here.
"""

import re

import kubesalt_core.etcd
import kubesalt_core.etcd_snapshot

ORCHESTRATION = "kubesalt.orch.etcd_restore"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def input_problems(masters, snapshot, source, sha256):
    """What is wrong with the orchestration's arguments (messages; empty when nothing).

    masters
        every master pillar lists; ``source``: the master that holds ``snapshot``.
    """
    problems = []
    if not kubesalt_core.etcd_snapshot.is_snapshot(str(snapshot or "")):
        problems.append(
            f"pillar key snapshot: expected a snapshot file name such as "
            f"<cluster>-20261204T220000Z-<member>.db (kubesalt_etcd_snapshot.list), "
            f"got {snapshot or 'nothing'!r}"
        )
    elif source not in masters:
        problems.append(
            f"pillar key source: expected the master that holds {snapshot} (one of "
            f"{', '.join(masters) or 'no master'}), got {source or 'nothing'!r}"
        )
    if sha256 and not _SHA256.fullmatch(str(sha256)):
        problems.append(f"pillar key sha256: expected 64 hex digits, got {sha256!r}")
    return problems


def reach_problems(masters, answering, without_etcdutl):
    """Every master must answer (each is restored) and have etcdutl (it restores)."""
    problems = []
    silent = [m for m in masters if m not in answering]
    if silent:
        problems.append(
            f"not answering: {', '.join(silent)} (every master is restored from the "
            "snapshot; one left out would keep the old cluster's data)"
        )
    if without_etcdutl:
        problems.append(
            f"no etcdutl on {', '.join(without_etcdutl)} (etcd 3.5 or newer installs it "
            "with etcd; artifacts:etcd)"
        )
    return problems


def refusal(health, snapshot, recorded_sha256, force=False):
    """Why a restore must not go ahead (a message), or None.

    health
        ``kubesalt_etcd.health``'s summary as seen now, or None when no member answered.
    snapshot
        ``kubesalt_etcd_snapshot.verify``'s answer on the master holding it.
    recorded_sha256
        the digest the operator names (or the snapshot's own record).
    """
    if not snapshot or not snapshot.get("sha256"):
        return "no verified snapshot: name one that kubesalt_etcd_snapshot.list shows"
    if recorded_sha256 and snapshot["sha256"] != recorded_sha256:
        return (
            f"snapshot {snapshot.get('name')} has sha256 {snapshot['sha256']}, not the "
            f"expected {recorded_sha256}"
        )
    if health and health.get("healthy") and not force:
        return (
            f"etcd still has a quorum ({health.get('healthy_voting_members')} of "
            f"{health.get('voting_members')} voting members healthy): a restore would throw "
            "away every write since the snapshot; replace lost members with "
            "kubesalt.orch.replace_master instead, or force it (pillar force: true)"
        )
    return None


def new_token(cluster, when):
    """The restored cluster's initial-cluster token (``when``: a UTC datetime)."""
    return f"kubesalt-{cluster}-restored-{when.strftime('%Y%m%dT%H%M%SZ')}"


def initial_cluster(config):
    """``name=peer_url,...`` of every master pillar lists: the restored cluster's members."""
    peers = kubesalt_core.etcd.master_peers(config)
    return ",".join(f"{name}={url}" for name, url in sorted(peers.items()))


# The restored revision jumps this far past the snapshot's, and everything before it reads
# as compacted: a watcher (an apiserver's cache, a controller's informer) that saw a newer
# revision than the snapshot's then lists afresh instead of waiting on revisions that
# will mean other writes (as the Kubernetes documentation for a restore advises).
REVISION_BUMP = 1_000_000_000


def restore_argv(etcdutl, snapshot, member, peer_url, cluster, token, data_dir):
    """``etcdutl snapshot restore`` of ``snapshot`` as ``member`` into ``data_dir``."""
    return [
        etcdutl,
        "snapshot",
        "restore",
        snapshot,
        f"--name={member}",
        f"--initial-cluster={cluster}",
        f"--initial-cluster-token={token}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--data-dir={data_dir}",
        f"--bump-revision={REVISION_BUMP}",
        "--mark-compacted",
    ]


def steps(snapshot, source, others, masters, token):
    """What the orchestration will do, in order (``test=True`` prints it)."""
    every = ", ".join(masters)
    return [
        f"stop kube-apiserver on {every}",
        f"{source} offers {snapshot} over mutual TLS (etcd peer certificates)"
        + (f"; {', '.join(others)} fetch it and check its sha256" if others else ""),
        f"on {every}: stop etcd, etcdutl snapshot restore into cluster token {token}, "
        "the old data dir moved aside",
        f"start etcd on {every} together; wait until every member is healthy",
        f"start kube-apiserver on {every}; wait for /readyz",
        f"highstate of {every}",
    ]
