"""etcd snapshots: their names, their records, which to keep, and how to check one.

A snapshot is ``<cluster>-<UTC time>-<member>.db`` in ``paths:etcd_snapshot_dir`` (0700),
mode 0600, with ``<name>.sha256`` beside it (``sha256sum`` format, so ``sha256sum -c``
checks it by hand) and ``<name>.json`` (what ``etcdutl snapshot status`` said, when, from
which member). It is written under a temporary name and renamed only once verified: a
snapshot with a name is a whole one.

No Salt dunders and no I/O here.
"""

import json
import re
from datetime import UTC, datetime

SUFFIX = ".db"
_NAME = re.compile(r"^(?P<cluster>.+)-(?P<taken>\d{8}T\d{6}Z)-(?P<member>[^/]+)\.db$")


def name_for(cluster, member, when):
    """The file name of a snapshot of ``member`` taken at ``when`` (a UTC datetime)."""
    return f"{cluster}-{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{member}{SUFFIX}"


def is_snapshot(name):
    return bool(_NAME.match(name))


def taken_at(name):
    """When a snapshot named ``name`` was taken (UTC), or None for another file."""
    found = _NAME.match(name)
    if not found:
        return None
    return datetime.strptime(found.group("taken"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def member_in(name):
    """The member a snapshot named ``name`` was taken from (the master that took and keeps
    it), or None for another file."""
    found = _NAME.match(name or "")
    return found.group("member") if found else None


def sha256_line(digest, name):
    """The ``.sha256`` file's content: what ``sha256sum`` prints and ``sha256sum -c`` reads."""
    return f"{digest}  {name}\n"


def recorded_sha256(text, name):
    """The digest a ``.sha256`` file records for ``name``; ValueError when it records none."""
    for line in (text or "").splitlines():
        parts = line.split()
        if (
            len(parts) == 2
            and parts[1].lstrip("*") == name
            and re.fullmatch(r"[0-9a-f]{64}", parts[0])
        ):
            return parts[0]
    raise ValueError(f"no sha256 recorded for {name}")


def status_argv(etcdutl, etcdctl, path):
    """The command that reads a snapshot file's status as JSON: etcdutl's (etcd 3.5 and
    newer), else etcdctl's own (3.4)."""
    if etcdutl:
        return [etcdutl, "snapshot", "status", "--write-out=json", path]
    return [etcdctl, "snapshot", "status", "--write-out=json", path]


def parse_status(output):
    """``etcdutl snapshot status -w json`` -> ``{hash, revision, keys, size}``; ValueError
    when it is not a snapshot's status."""
    try:
        raw = json.loads(output)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a snapshot status: {output.strip()[:200]}") from err
    try:
        return {
            "hash": int(raw["hash"]),
            "revision": int(raw["revision"]),
            "keys": int(raw["totalKey"]),
            "size": int(raw["totalSize"]),
        }
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"not a snapshot status: {output.strip()[:200]}") from err


def to_prune(names, keep):
    """The snapshot names beyond the newest ``keep`` (oldest first)."""
    ordered = sorted((n for n in names if is_snapshot(n)), key=lambda n: (taken_at(n), n))
    return ordered[: max(0, len(ordered) - int(keep))]
