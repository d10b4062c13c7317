"""What the lab and the benchmarks print: highstate summaries, unit states, tables (pure
functions), and the one writer of benchmark results."""

import json
from pathlib import Path


def summarize_highstate(ret):
    """Count a minion's state.apply return: {ok, changed, failed, duration_ms, errors}.

    ``ret`` is the per-minion return: a dict of state results, or a list of render errors.
    """
    if not isinstance(ret, dict):
        errors = ret if isinstance(ret, list) else [str(ret)]
        return {"ok": 0, "changed": 0, "failed": 0, "duration_ms": 0.0, "errors": errors}
    summary = {"ok": 0, "changed": 0, "failed": 0, "duration_ms": 0.0, "errors": []}
    for state in ret.values():
        if state.get("result") is False:
            summary["failed"] += 1
            summary["errors"].append(f"{state.get('__id__')}: {state.get('comment')}")
        elif state.get("changes"):
            summary["changed"] += 1
        else:
            summary["ok"] += 1
        summary["duration_ms"] += float(state.get("duration") or 0)
    return summary


NOT_IN_LAB = "artifact not available in this lab"


def changed_ids(ret):
    """State IDs a real run changed (or, for a test=True run, would change: result None or
    changes), sorted; a render error gives its messages instead, so it never looks empty."""
    if not isinstance(ret, dict):
        return [f"error: {ret}"]
    return sorted(
        state.get("__id__")
        for state in ret.values()
        if state.get("changes") or state.get("result") is None
    )


def unit_state(props, artifact):
    """One line about a unit from `systemctl show` properties.

    artifact
        The lab pillar's ``artifacts:<name>`` entry for the artifact the unit needs, or
        None: then the unit is said to be not in the lab, never shown as running (kubesalt
        still installs its unit file, which the line says).
    """
    if props.get("LoadState") == "not-found":
        return "not installed yet" if artifact else NOT_IN_LAB
    state = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})"
    if not artifact:
        return f"{NOT_IN_LAB} (unit installed, {state})"
    enabled = props.get("UnitFileState")
    return f"{state}, {enabled}" if enabled else state


def parse_systemctl_show(text):
    """Parse `systemctl show -p A -p B u1 u2` output: blocks separated by blank lines."""
    blocks, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def table(headers, rows):
    """A plain-text table with columns as wide as their widest cell."""
    cells = [list(map(str, headers))] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path, data):
    """Write a benchmark's results as indented JSON (making its folder) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path
