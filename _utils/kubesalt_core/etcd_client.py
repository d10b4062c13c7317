"""A small client for etcd's v3 JSON gateway (``/v3/...`` over HTTPS with client
certificates): no client library, only urllib. The decisions about what the answers mean
live in :mod:`kubesalt_core.etcd`; this module only talks.
"""

import json
import logging
import time
import urllib.error
import urllib.request

import kubesalt_core.etcd
from kubesalt_core.errors import EtcdError, GaveUp, Unreachable

log = logging.getLogger(__name__)

# One HTTP request; a member that takes longer is treated as not answering.
REQUEST_TIMEOUT = 5


class Gateway:
    """POSTs JSON to the first endpoint that answers."""

    def __init__(self, endpoints, context, timeout=REQUEST_TIMEOUT):
        self.endpoints = list(endpoints)
        self.context = context
        self.timeout = timeout

    def post(self, path, body=None, endpoints=None, timeout=None):
        failures = []
        for endpoint in endpoints or self.endpoints:
            request = urllib.request.Request(
                endpoint.rstrip("/") + path,
                data=json.dumps(body or {}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(
                    request, timeout=timeout or self.timeout, context=self.context
                ) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as err:
                raise EtcdError(err.code, _error_message(err), path) from None
            except (urllib.error.URLError, OSError, ValueError) as err:
                reason = getattr(err, "reason", err)
                failures.append(f"{endpoint}: {reason}")
        raise Unreachable("no etcd endpoint answered: " + "; ".join(failures))


def _error_message(err):
    try:
        answer = json.loads(err.read() or b"{}")
    except ValueError:
        return err.reason
    return answer.get("message") or answer.get("error") or err.reason


def retrying(action, what, timeout, on_retry=None):
    """Call ``action()`` until it succeeds, a permanent error comes, or ``timeout`` passes;
    then raise :class:`GaveUp` naming ``what``.

    on_retry
        Called as ``on_retry(error, seconds)`` for each failed attempt that is retried, with
        the time from that attempt's start to the end of the wait after it (benchmarks
        book these by reason).
    """
    deadline = time.monotonic() + float(timeout)
    delays = kubesalt_core.etcd.backoff()
    attempts = 0
    while True:
        attempts += 1
        started = time.monotonic()
        try:
            return action()
        except (EtcdError, Unreachable) as err:
            if not err.transient:
                raise GaveUp(f"{what}: {err}") from None
            delay = next(delays)
            if time.monotonic() + delay > deadline:
                raise GaveUp(
                    f"{what}: still failing after {attempts} attempts in {timeout} s: {err}"
                ) from None
            log.debug("kubesalt etcd: %s: %s; retrying in %.1f s", what, err, delay)
            time.sleep(delay)
            if on_retry is not None:
                on_retry(err, time.monotonic() - started)


def once(action, what):
    """Call ``action()`` once; an etcd error or no answer becomes :class:`GaveUp`."""
    try:
        return action()
    except (EtcdError, Unreachable) as err:
        raise GaveUp(f"{what}: {err}") from None
