"""systemctl and journalctl as the healing loop needs them (the I/O half of kubesalt_core.heal).

Only what Debian's systemd ships: the ``systemctl`` and ``journalctl`` commands, their JSON
and ``key=value`` output. Every call has a timeout; a failure raises :class:`SystemdError`
with the command and what it printed.
"""

import json
import subprocess

import kubesalt_core.heal
from kubesalt_core.errors import SystemdError

# Properties of a unit the loop reads: whether it runs, how systemd last ended it, and
# InvocationID/NRestarts to tell a new run (or a restart systemd made) from the old one.
PROPERTIES = ("Id", "ActiveState", "SubState", "Result", "NRestarts", "InvocationID")


def _run(argv, timeout=30, check=True):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SystemdError(f"{' '.join(argv)}: {err}") from err
    if check and proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()
        raise SystemdError(f"{' '.join(argv)} exited {proc.returncode}: {said}")
    return proc


def parse_show(text):
    """``systemctl show`` output (blocks of key=value, one per unit) -> ``{Id: {key: value}}``."""
    units, current = {}, {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if current.get("Id"):
                units[current["Id"]] = current
            current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    return units


def show(units):
    """``{unit: {property: value}}`` for ``units`` (see :data:`PROPERTIES`)."""
    if not units:
        return {}
    argv = ["systemctl", "show", "--property", ",".join(PROPERTIES), "--", *units]
    return parse_show(_run(argv).stdout)


def active_state(unit):
    return show([unit]).get(unit, {}).get("ActiveState")


def reset_failed(unit):
    """Forget the unit's failed state and its start-limit counter."""
    _run(["systemctl", "reset-failed", "--", unit], check=False)


def restart(unit, timeout=120):
    """``systemctl restart``; returns ``(ok, what systemctl said)`` (a failed start is an
    answer, not an error: the caller records it)."""
    proc = _run(["systemctl", "restart", "--", unit], timeout=timeout, check=False)
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()


def journal_tail_cursor():
    """The cursor of the journal's newest entry (None for an empty journal)."""
    proc = _run(["journalctl", "--no-pager", "-o", "json", "-n", "1"], check=False)
    for line in proc.stdout.splitlines():
        return json.loads(line).get("__CURSOR")
    return None


def failures_after(cursor, max_entries):
    """PID 1's failure messages (:data:`kubesalt_core.heal.FAILURE_MESSAGE_IDS`) written after
    ``cursor``, oldest first, at most ``max_entries`` (the rest waits for the next call,
    which starts after the last one returned). ``_PID=1`` is a field journald sets itself:
    a process that logs a look-alike message does not match."""
    argv = ["journalctl", "--no-pager", "-o", "json", "--after-cursor", cursor, "_PID=1"]
    argv += [f"MESSAGE_ID={message_id}" for message_id in kubesalt_core.heal.FAILURE_MESSAGE_IDS]
    entries = []
    try:
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            for line in proc.stdout:
                if line.startswith("{"):
                    entries.append(json.loads(line))
                if len(entries) >= max_entries:
                    proc.kill()
                    break
            _, err = proc.communicate(timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SystemdError(f"{' '.join(argv)}: {error}") from error
    if proc.returncode not in (0, -9) or (proc.returncode and len(entries) < max_entries):
        raise SystemdError(f"journalctl exited {proc.returncode}: {err.strip()}")
    return entries


def systemd_messages(unit, lines=5):
    """PID 1's latest messages about ``unit`` (texts only), oldest first."""
    argv = ["journalctl", "--no-pager", "-o", "json", "-n", str(lines), "_PID=1", f"UNIT={unit}"]
    proc = _run(argv, check=False)
    out = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            message = json.loads(line).get("MESSAGE")
            out.append(message if isinstance(message, str) else "")
    return out


def last_lines(unit, lines=20):
    """The unit's last journal lines (its own output and systemd's messages about it)."""
    argv = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines), "-u", unit]
    return _run(argv, check=False).stdout.splitlines()[-lines:]
