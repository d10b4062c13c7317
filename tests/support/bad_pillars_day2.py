"""The bad-pillar cases of day-2 operations (``upgrade``, ``etcd:snapshots`` and their
directory), part of :data:`bad_pillars.CASES`."""

from tests.support.bad_pillar_case import BadPillar
from tests.support.bad_pillar_case import set_key as _set

DAY2_CASES = [
    BadPillar(
        "upgrade-worker-batch-zero",
        _set("upgrade:worker_batch", 0),
        "kubesalt:upgrade:worker_batch: 0 is not a number of workers, a whole number from 1 "
        "to 1000",
    ),
    BadPillar(
        "upgrade-worker-batch-more-than-workers",
        _set("upgrade:worker_batch", 3),
        "kubesalt:upgrade:worker_batch: 3 is more than the 2 workers in nodes; expected 1 to 2",
    ),
    BadPillar(
        "upgrade-drain-timeout-not-seconds",
        _set("upgrade:drain_timeout", "5m"),
        "kubesalt:upgrade:drain_timeout: '5m' is not seconds, a whole number from 1 to 86400",
    ),
    BadPillar(
        "etcd-snapshot-dir-relative",
        _set("paths", {"etcd_snapshot_dir": "var/lib/etcd-snapshots"}),
        "kubesalt:paths:etcd_snapshot_dir: 'var/lib/etcd-snapshots' is not an absolute path",
    ),
    BadPillar(
        "etcd-snapshot-keep-zero",
        _set("etcd:snapshots:keep", 0),
        "kubesalt:etcd:snapshots:keep: 0 is not a number of snapshots, a whole number from 1 "
        "to 1000",
    ),
    BadPillar(
        "etcd-snapshot-interval-negative",
        _set("etcd:snapshots:interval_minutes", -5),
        "kubesalt:etcd:snapshots:interval_minutes: -5 is not minutes (0: none), a whole number "
        "from 0 to 10080",
    ),
]
