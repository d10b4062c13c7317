"""A small client for etcd's v3 JSON gateway (``/v3/...`` over HTTPS with client
certificates): no client library, only urllib. The decisions about what the answers mean
live in :mod:`kubesalt_core.etcd`; this module only talks.
"""

import base64
import contextlib
import json
import logging
import ssl
import time
import urllib.error
import urllib.request

import kubesalt_core.etcd
from kubesalt_core.errors import EtcdError, GaveUp, Unreachable

log = logging.getLogger(__name__)

# One HTTP request; a member that takes longer is treated as not answering.
REQUEST_TIMEOUT = 5
# How long a status probe of one member may take.
PROBE_TIMEOUT = 2


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

    def get_text(self, path, endpoint, timeout=None):
        """GET ``path`` from one endpoint (e.g. ``/metrics``) as text."""
        try:
            with urllib.request.urlopen(
                endpoint.rstrip("/") + path, timeout=timeout or self.timeout, context=self.context
            ) as response:
                return response.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            raise EtcdError(err.code, _error_message(err), path) from None
        except (urllib.error.URLError, OSError) as err:
            raise Unreachable(f"{endpoint}: {getattr(err, 'reason', err)}") from None


def tls_gateway(endpoints, cert, key, cacert, timeout=REQUEST_TIMEOUT):
    """A :class:`Gateway` that presents ``cert``/``key`` and trusts ``cacert``; ValueError
    when the files do not load."""
    try:
        context = ssl.create_default_context(cafile=cacert)
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise ValueError(
            f"cannot load the etcd client TLS files (cert={cert}, key={key}, cacert={cacert}): "
            f"{err}; kubesalt_pki issues them on masters"
        ) from None
    return Gateway(endpoints, context, timeout)


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


def changing(gateway, action, what, timeout, avoid=()):
    """:func:`retrying` for a membership change. When etcd's strict reconfiguration check
    refuses, the next attempt goes first to the members connected to every voter in their
    own view (:func:`kubesalt_core.etcd.connected_first`; the URLs in ``avoid`` last); when
    it refused until the end, the error also names the member pairs that are cut off."""

    def attempt():
        try:
            return action()
        except EtcdError as err:
            if "unhealthy cluster" in str(err):
                _connected_first(gateway, avoid)
            raise

    try:
        return retrying(attempt, what, timeout)
    except GaveUp as err:
        if "unhealthy cluster" not in str(err):
            raise
        raise GaveUp(f"{err}; {peer_links_summary(gateway)}") from None


def _connected_first(gateway, avoid):
    """Reorder ``gateway.endpoints`` for the next attempt of a membership change."""
    try:
        found = members(gateway)
        links = peer_links(gateway, found)
    except (EtcdError, Unreachable) as err:
        log.debug("kubesalt etcd: peer connections unknown: %s", err)
        return
    ordered = kubesalt_core.etcd.connected_first(gateway.endpoints, found, links, avoid)
    if ordered != gateway.endpoints:
        log.info(
            "kubesalt etcd: %s; asking %s first",
            kubesalt_core.etcd.describe_links(links),
            ordered[0],
        )
        gateway.endpoints[:] = ordered


def once(action, what):
    """Call ``action()`` once; an etcd error or no answer becomes :class:`GaveUp`."""
    try:
        return action()
    except (EtcdError, Unreachable) as err:
        raise GaveUp(f"{what}: {err}") from None


# --- reading --------------------------------------------------------------------------------


def members(gateway):
    """The member list, as :class:`kubesalt_core.etcd.Member` records."""
    return kubesalt_core.etcd.members_of(gateway.post(kubesalt_core.etcd.MEMBER_LIST))


def probe(gateway, member):
    """One member's own status, asked of that member only."""
    row = {**member.as_dict(), "healthy": False, "leader": False, "error": None}
    if not member.client_urls:
        row["error"] = "not started"
        return row
    try:
        answer = gateway.post(
            kubesalt_core.etcd.STATUS, endpoints=member.client_urls, timeout=PROBE_TIMEOUT
        )
    except (EtcdError, Unreachable) as err:
        row["error"] = str(err)
        return row
    leader = str(answer.get("leader", "0"))
    errors = answer.get("errors") or []
    row.update(
        version=answer.get("version"),
        raft_index=int(answer.get("raftIndex", 0)),
        raft_term=int(answer.get("raftTerm", 0)),
        db_size=int(answer.get("dbSize", 0)),
        leader_id=leader,
        leader=leader == member.id,
        healthy=leader != "0" and not errors,
        error="; ".join(errors) or (None if leader != "0" else "no leader"),
    )
    return row


def peer_links(gateway, members_):
    """Whom each member has a working peer connection to, from each member's own
    ``/metrics`` (:func:`kubesalt_core.etcd.peer_links`)."""
    texts = {}
    for member in members_:
        texts[member.id] = None
        for url in member.client_urls:
            try:
                texts[member.id] = gateway.get_text("/metrics", url, timeout=PROBE_TIMEOUT)
                break
            except (EtcdError, Unreachable):
                continue
    return kubesalt_core.etcd.peer_links(members_, texts)


def peer_links_summary(gateway):
    """A sentence on the members' peer connections (:func:`peer_links`)."""
    try:
        return kubesalt_core.etcd.describe_links(peer_links(gateway, members(gateway)))
    except (EtcdError, Unreachable) as err:
        return f"peer connections unknown: {err}"


def status(gateway):
    """The member list and each member's own status (see :func:`probe`)."""
    found = members(gateway)
    return found, [probe(gateway, m) for m in found]


# How long a removal check waits for an election under way to end before it judges quorum.
ELECTION_WAIT = 15


def settled_status(gateway):
    """Member status once no election is under way (or ELECTION_WAIT has passed): read
    during an election, every member would count as unhealthy."""
    deadline = time.monotonic() + ELECTION_WAIT
    while True:
        members_, rows = once(lambda: status(gateway), "reading member status")
        if not kubesalt_core.etcd.electing(rows) or time.monotonic() > deadline:
            return members_, rows
        time.sleep(0.5)


# --- a lock in etcd itself ------------------------------------------------------------------


@contextlib.contextmanager
def cluster_lock(gateway, name, holder, timeout, ttl=120):
    """Hold ``/kubesalt/locks/<name>`` in etcd itself, under a lease of ``ttl`` seconds
    (a holder that dies frees it when the lease runs out)."""
    key = kubesalt_core.etcd.LOCK_PREFIX + name
    lease = retrying(
        lambda: gateway.post(kubesalt_core.etcd.LEASE_GRANT, {"TTL": ttl}),
        "granting a lease",
        timeout,
    )["ID"]
    deadline = time.monotonic() + float(timeout)
    while True:
        answer = retrying(
            lambda: gateway.post(
                kubesalt_core.etcd.KV_TXN, kubesalt_core.etcd.lock_request(key, holder, lease)
            ),
            f"taking lock {key}",
            timeout,
        )
        if answer.get("succeeded"):
            break
        other = kubesalt_core.etcd.lock_holder(answer)
        if other == holder:
            break
        if time.monotonic() > deadline:
            raise GaveUp(f"lock {key} still held by {other} after {timeout} s")
        time.sleep(1)
    try:
        yield
    finally:
        try:
            retrying(
                lambda: gateway.post(kubesalt_core.etcd.LEASE_REVOKE, {"ID": lease}),
                "releasing the lock",
                30,
            )
        except GaveUp as err:
            log.warning("kubesalt etcd: %s; the lease expires by itself after %s s", err, ttl)


def prefix_end(prefix):
    """The range end that covers every key starting with ``prefix`` (bytes)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def values(gateway, prefix, page=500):
    """Every ``(key, value)`` (bytes) under ``prefix`` (bytes), read ``page`` keys at a time
    at one revision."""
    end = base64.b64encode(prefix_end(prefix)).decode()
    start, revision = prefix, 0
    while True:
        body = {"key": base64.b64encode(start).decode(), "range_end": end, "limit": page}
        if revision:
            body["revision"] = revision
        answer = gateway.post("/v3/kv/range", body)
        revision = revision or int(answer.get("header", {}).get("revision", 0))
        kvs = answer.get("kvs") or []
        for kv in kvs:
            yield base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", ""))
        if not answer.get("more") or not kvs:
            return
        start = base64.b64decode(kvs[-1]["key"]) + b"\0"
