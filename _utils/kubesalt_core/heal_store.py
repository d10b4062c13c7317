"""What the healing loop keeps on the node, under ``paths:heal_dir``:

- ``history.jsonl``: every :class:`kubesalt_core.heal.Attempt`, one JSON object per line (the
  budget and the backoff are read from it, so they survive a minion restart); trimmed to
  the newest :data:`KEEP` records;
- ``<unit>.lock``: held (``flock``) by the one repair of that unit in flight; the kernel
  drops it when the process ends, however it ends;
- ``<unit>.inflight``: the PID of that repair, for the beacon, which stays quiet about a
  unit while kubesalt itself is restarting it;
- ``<unit>.paused``: ``{"by", "until"}`` while an orchestration keeps the unit stopped on
  purpose (an etcd restore keeps the apiserver down): no repair and no event for it until
  then, or until it is resumed;
- ``journal.cursor``: where the journal beacon stopped reading.
"""

import contextlib
import fcntl
import json
import os
import time

import kubesalt_core.files
import kubesalt_core.heal
import kubesalt_core.pillar
from kubesalt_core.errors import InFlight

KEEP = 2000
# paths:heal_dir of the formula defaults (states/kubesalt/defaults.yaml; a test keeps the
# two equal). The beacon runs in the minion's main loop and must not ask the master for the
# defaults file, so it takes this when pillar does not set the path.
DEFAULT_HEAL_DIR = "/var/lib/kubesalt/heal"


def heal_dir(pillar_paths):
    """``paths:heal_dir`` under ``paths:root`` from the ``kubesalt:paths`` pillar alone."""
    paths = pillar_paths if isinstance(pillar_paths, dict) else {}
    return kubesalt_core.pillar.resolve_paths(
        {"root": paths.get("root") or "/", "heal_dir": paths.get("heal_dir") or DEFAULT_HEAL_DIR}
    )["heal_dir"]


class Store:
    def __init__(self, directory):
        self.directory = directory

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _ensure(self):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    # --- history -------------------------------------------------------------------------

    def history(self):
        try:
            with open(self._path("history.jsonl"), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return []
        attempts = []
        for line in lines:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                attempts.append(kubesalt_core.heal.Attempt.from_json(line))
        return attempts

    def record(self, attempt):
        """Append ``attempt`` (the file keeps the newest :data:`KEEP`)."""
        kubesalt_core.files.append_line(self._path("history.jsonl"), attempt.to_json(), KEEP)

    # --- one repair per unit ---------------------------------------------------------------

    @contextlib.contextmanager
    def repairing(self, unit):
        """Hold ``unit``'s lock for the repair's life; raise :class:`InFlight` if taken."""
        self._ensure()
        fd = os.open(self._path(f"{unit}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                raise InFlight(unit) from err
            marker = self._path(f"{unit}.inflight")
            kubesalt_core.files.write_atomically(marker, str(os.getpid()), 0o600)
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(marker)
        finally:
            os.close(fd)

    def in_flight(self, unit):
        """The PID of the repair of ``unit`` now running, or None."""
        try:
            with open(self._path(f"{unit}.inflight"), encoding="utf-8") as handle:
                pid = int(handle.read().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    # --- units kept stopped on purpose ----------------------------------------------------

    def pause(self, unit, by, seconds):
        """No repair of ``unit`` for ``seconds`` (``by`` says who asked, and why)."""
        self._ensure()
        record = json.dumps({"by": by, "until": time.time() + float(seconds)})
        kubesalt_core.files.write_atomically(self._path(f"{unit}.paused"), record, 0o600)

    def resume(self, unit):
        """True when ``unit`` was paused."""
        try:
            os.unlink(self._path(f"{unit}.paused"))
        except FileNotFoundError:
            return False
        return True

    def paused(self, unit):
        """``{"by", "until"}`` while ``unit`` is paused, else None (an expired pause too)."""
        try:
            with open(self._path(f"{unit}.paused"), encoding="utf-8") as handle:
                record = json.load(handle)
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(record, dict) or float(record.get("until", 0)) <= time.time():
            return None
        return record

    # --- the beacon's place in the journal -------------------------------------------------

    def cursor(self):
        try:
            with open(self._path("journal.cursor"), encoding="utf-8") as handle:
                return handle.read().strip() or None
        except FileNotFoundError:
            return None

    def save_cursor(self, cursor):
        self._ensure()
        kubesalt_core.files.write_atomically(self._path("journal.cursor"), cursor, 0o600)
