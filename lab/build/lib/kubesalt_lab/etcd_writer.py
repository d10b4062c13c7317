"""Put one key every interval into etcd until told to stop, then read every key back.

Runs inside a lab master (stdlib only, the host's python3) during a membership change:
any put that no endpoint acknowledges, or any acknowledged key missing at the end, means
the change cost the cluster its quorum or lost data. Prints one JSON summary line.

    python3 lab/etcd_writer.py --stop-file /run/writer.stop \\
        --servers https://198.18.0.11:2379,https://198.18.0.12:2379 \\
        --cert ... --key ... --cacert ...
"""

import base64
import json
import sys
import time
import urllib.error
import urllib.request

import writer_loop


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _post(endpoint, path, body, context, timeout):
    request = urllib.request.Request(
        endpoint + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read() or b"{}")


def _put(endpoints, key, value, context, timeout):
    """Try each endpoint in turn; return the one that acknowledged, or None."""
    for endpoint in endpoints:
        try:
            _post(
                endpoint, "/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, context, timeout
            )
            return endpoint
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return None


def _read_all(endpoints, prefix, context):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    for endpoint in endpoints:
        try:
            answer = _post(
                endpoint, "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)}, context, 10
            )
        except (urllib.error.URLError, OSError, ValueError):
            continue
        return {base64.b64decode(kv["key"]).decode() for kv in answer.get("kvs") or ()}
    raise SystemExit("no endpoint answered the final read")


def main(argv=None):
    parser = writer_loop.arguments(
        __doc__.splitlines()[0], "comma-separated etcd client URLs", timeout=1.0
    )
    parser.add_argument("--prefix", default="/kubesalt/writer/")
    args = parser.parse_args(argv)
    context = writer_loop.tls_context(args)
    endpoints = args.servers.split(",")

    def put(index):
        key = f"{args.prefix}{index:08d}"
        return key, _put(endpoints, key, str(time.time()), context, args.timeout)

    done = writer_loop.write_until_stopped(args, put)
    present = _read_all(endpoints, args.prefix, context)
    missing = [k for k in done["acknowledged"] if k not in present]
    summary = {
        "seconds": done["seconds"],
        "puts": done["writes"],
        "acknowledged": len(done["acknowledged"]),
        "failed_puts": len(done["failed"]),
        "missing": len(missing),
        "slowest_put_seconds": done["slowest_seconds"],
    }
    print(json.dumps(summary))
    return 0 if not done["failed"] and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
