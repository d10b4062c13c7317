"""Put one key every interval into etcd until told to stop, then read every key back.

Runs inside a lab master (stdlib only, the host's python3) during a membership change:
any put that no endpoint acknowledges, or any acknowledged key missing at the end, means
the change cost the cluster its quorum or lost data. Prints one JSON summary line.

    python3 lab/etcd_writer.py --stop-file /run/writer.stop \\
        --endpoints https://198.18.0.11:2379,https://198.18.0.12:2379 \\
        --cert ... --key ... --cacert ...
"""

import argparse
import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", required=True, help="comma-separated client URLs")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--cacert", required=True)
    parser.add_argument("--stop-file", required=True, help="stop once this file exists")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between puts")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per put attempt")
    parser.add_argument("--prefix", default="/kubesalt/writer/")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args(argv)

    context = ssl.create_default_context(cafile=args.cacert)
    context.load_cert_chain(args.cert, args.key)
    endpoints = args.endpoints.split(",")
    acknowledged, failed, slowest = [], [], 0.0
    started = time.monotonic()
    index = 0
    while not os.path.exists(args.stop_file) and time.monotonic() - started < args.max_seconds:
        key = f"{args.prefix}{index:08d}"
        t0 = time.monotonic()
        endpoint = _put(endpoints, key, str(time.time()), context, args.timeout)
        took = time.monotonic() - t0
        slowest = max(slowest, took)
        (acknowledged if endpoint else failed).append(key)
        index += 1
        time.sleep(max(0.0, args.interval - took))
    present = _read_all(endpoints, args.prefix, context)
    missing = [k for k in acknowledged if k not in present]
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "puts": index,
        "acknowledged": len(acknowledged),
        "failed_puts": len(failed),
        "missing": len(missing),
        "slowest_put_seconds": round(slowest, 3),
    }
    print(json.dumps(summary))
    return 0 if not failed and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
