"""The loop both lab writers share (``etcd_writer.py``, ``api_writer.py``): one write every
interval until a stop file appears, each write's outcome kept. Stdlib only: the writers run
inside lab hosts with the host's python3, which finds this file beside them."""

import argparse
import os
import ssl
import time


def arguments(description, servers_help, timeout):
    """The options both writers take (and ``--servers``, named for what they talk to)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--servers", required=True, help=servers_help)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--cacert", required=True)
    parser.add_argument("--stop-file", required=True, help="stop once this file exists")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between writes")
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds per attempt")
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument(
        "--slow", type=float, default=0.5, help="a write that takes longer is kept as a stall"
    )
    return parser


def tls_context(args):
    context = ssl.create_default_context(cafile=args.cacert)
    context.load_cert_chain(args.cert, args.key)
    return context


def write_until_stopped(args, write):
    """Call ``write(index)`` every ``args.interval`` until the stop file exists. ``write``
    returns ``(name, server that acknowledged or None)``. Returns a summary dict with the
    acknowledged and failed names, and the stalls: ``[epoch seconds at its start, seconds
    it took, acknowledged]`` of every write that failed or took longer than ``args.slow``."""
    acknowledged, failed, by_server, slowest, stalls = [], [], {}, 0.0, []
    started = time.monotonic()
    started_at = time.time()
    index = 0
    while not os.path.exists(args.stop_file) and time.monotonic() - started < args.max_seconds:
        t0, at = time.monotonic(), time.time()
        name, server = write(index)
        took = time.monotonic() - t0
        slowest = max(slowest, took)
        if not server or took > args.slow:
            stalls.append([round(at, 3), round(took, 3), bool(server)])
        if server:
            acknowledged.append(name)
            by_server[server] = by_server.get(server, 0) + 1
        else:
            failed.append(name)
        index += 1
        time.sleep(max(0.0, args.interval - took))
    return {
        "seconds": round(time.monotonic() - started, 1),
        "writes": index,
        "acknowledged": acknowledged,
        "failed": failed,
        "by_server": by_server,
        "slowest_seconds": round(slowest, 3),
        "started_at": round(started_at, 3),
        "stalls": stalls,
    }
