"""Create one ConfigMap every interval through the apiservers until told to stop, then list
them back.

Runs inside a lab master (stdlib only, the host's python3) while a master is replaced: each
create goes to the next apiserver in turn, and to the others when that one does not answer,
as a client behind a load balancer would. Any create no apiserver acknowledged, or any
acknowledged object missing at the end, means the control plane stopped serving or lost
data. Prints one JSON summary line.

    python3 lab/api_writer.py --stop-file /run/api-writer.stop \\
        --servers https://198.18.0.11:6443,https://198.18.0.12:6443 \\
        --cert ... --key ... --cacert ...
"""

import json
import sys
import time
import urllib.error
import urllib.request

import writer_loop

NAMESPACE = "kubesalt-writer"


def _call(server, method, path, body, context, timeout):
    request = urllib.request.Request(
        server + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read() or b"{}")


def _ensure_namespace(servers, context):
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    for server in servers:
        try:
            _call(server, "POST", "/api/v1/namespaces", body, context, 5)
            return
        except urllib.error.HTTPError as err:
            if err.code == 409:  # there already
                return
        except (urllib.error.URLError, OSError):
            continue
    raise SystemExit("no apiserver answered to create the namespace")


def _create(servers, first, name, run, context, timeout, refusals):
    """Try the servers from ``first`` on; return the one that acknowledged, or None.
    Each answer that was an error (the apiserver answered, the connection worked) is
    counted in ``refusals`` by its status and reason."""
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"kubesalt.lab/writer": run}},
        "data": {"at": str(time.time())},
    }
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    for offset in range(len(servers)):
        server = servers[(first + offset) % len(servers)]
        try:
            _call(server, "POST", path, body, context, timeout)
            return server
        except urllib.error.HTTPError as err:
            if err.code == 409:  # an earlier attempt landed after all: it exists
                return server
            key = f"{err.code} {_reason(err)}"
            refusals[key] = refusals.get(key, 0) + 1
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return None


def _reason(err):
    """The apiserver's own message of an error answer (a Status object), shortened."""
    try:
        return str(json.loads(err.read() or b"{}").get("message", ""))[:120]
    except (ValueError, OSError):
        return ""


def _list(servers, run, context, within=60):
    """The names of this run's ConfigMaps, asked of the servers in turn until one answers
    (for up to ``within`` seconds: a client tries again)."""
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps?labelSelector=kubesalt.lab/writer%3D{run}"
    deadline = time.monotonic() + within
    while True:
        for server in servers:
            try:
                answer = _call(server, "GET", path, None, context, 10)
            except (urllib.error.URLError, OSError, ValueError):
                continue
            return {item["metadata"]["name"] for item in answer.get("items") or ()}
        if time.monotonic() > deadline:
            raise SystemExit(f"no apiserver answered the final list within {within} s")
        time.sleep(1)


def main(argv=None):
    parser = writer_loop.arguments(
        __doc__.splitlines()[0], "comma-separated apiserver URLs", timeout=2.0
    )
    parser.add_argument("--run", default=str(int(time.time())), help="label of this run")
    args = parser.parse_args(argv)
    context = writer_loop.tls_context(args)
    servers = args.servers.split(",")
    _ensure_namespace(servers, context)

    refusals = {}

    def create(index):
        name = f"writer-{args.run}-{index:06d}"
        return name, _create(servers, index, name, args.run, context, args.timeout, refusals)

    done = writer_loop.write_until_stopped(args, create)
    present = _list(servers, args.run, context)
    missing = [n for n in done["acknowledged"] if n not in present]
    summary = {
        "seconds": done["seconds"],
        "creates": done["writes"],
        "acknowledged": len(done["acknowledged"]),
        "failed_creates": len(done["failed"]),
        # Failed creates the apiserver answered with an error ({status and message: n});
        # the others got no answer (connection refused, reset or timed out).
        "refused_by_apiserver": refusals,
        "missing": len(missing),
        "slowest_create_seconds": done["slowest_seconds"],
        "by_server": done["by_server"],
        "started_at": done["started_at"],
        "stalls": done["stalls"],
    }
    print(json.dumps(summary))
    return 0 if not done["failed"] and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
