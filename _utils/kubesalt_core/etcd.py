"""etcd membership decisions, as data and pure functions.

The ``kubesalt_etcd`` execution module fetches the live member list and each member's status
over etcd's v3 JSON gateway; the functions here decide what is safe to do with them. No
Salt dunders and no I/O here.

Quorum rules kubesalt keeps (learners never count, they do not vote):

* a member joins as a learner and is promoted only once etcd says it is in sync, and only
  one member joins at a time (etcd itself allows one learner in 3.4);
* a voting member is removed only when the voting members that remain *and are healthy
  now* are a majority of the voting members *before* the removal. So the cluster keeps
  quorum under the old configuration while the change is in flight, and under the new one
  after it. The last voting member is never removed. With three members this allows 3 → 2
  and refuses 2 → 1: removing two of three is refused.
"""

import base64
import re
from dataclasses import dataclass

import kubesalt_core.artifact
import kubesalt_core.pillar

CLIENT_PORT = 2379
PEER_PORT = 2380

# Paths of the v3 JSON gateway (etcd 3.4 and later).
MEMBER_LIST = "/v3/cluster/member/list"
MEMBER_ADD = "/v3/cluster/member/add"
MEMBER_PROMOTE = "/v3/cluster/member/promote"
MEMBER_REMOVE = "/v3/cluster/member/remove"
STATUS = "/v3/maintenance/status"
MOVE_LEADER = "/v3/maintenance/transfer-leadership"
LEASE_GRANT = "/v3/lease/grant"
LEASE_REVOKE = "/v3/lease/revoke"
KV_TXN = "/v3/kv/txn"
# The key that serialises disruptive steps (restarts) across the masters.
LOCK_PREFIX = "/kubesalt/locks/"
KV_PUT = "/v3/kv/put"
KV_RANGE = "/v3/kv/range"


@dataclass(frozen=True)
class Member:
    """One entry of etcd's member list. ``id`` is etcd's uint64 as a decimal string."""

    id: str
    name: str
    peer_urls: tuple
    client_urls: tuple
    is_learner: bool

    @property
    def started(self):
        """A member added but never started has no name and no client URLs yet."""
        return bool(self.name)

    def describe(self):
        kind = "learner" if self.is_learner else "voting member"
        label = self.name or "(not started)"
        return f"{label} [{self.id}] {kind} at {','.join(self.peer_urls)}"

    def as_dict(self):
        return {
            "id": self.id,
            "name": self.name,
            "peer_urls": list(self.peer_urls),
            "client_urls": list(self.client_urls),
            "is_learner": self.is_learner,
        }


def member_of(entry):
    """A :class:`Member` from one gateway entry (``isLearner`` is omitted when false)."""
    return Member(
        id=str(entry["ID"]),
        name=entry.get("name", ""),
        peer_urls=tuple(entry.get("peerURLs") or ()),
        client_urls=tuple(entry.get("clientURLs") or ()),
        is_learner=bool(entry.get("isLearner", False)),
    )


def member_from_dict(row):
    """A :class:`Member` from :meth:`Member.as_dict` (what the execution module returns)."""
    return Member(
        id=row["id"],
        name=row["name"],
        peer_urls=tuple(row["peer_urls"]),
        client_urls=tuple(row["client_urls"]),
        is_learner=row["is_learner"],
    )


def members_of(answer):
    """Members from a member list, add, promote or remove answer."""
    return [member_of(entry) for entry in answer.get("members") or ()]


def voting(members):
    return [m for m in members if not m.is_learner]


def quorum(voters):
    """How many voting members must agree for etcd to make progress."""
    return voters // 2 + 1


def find(members, name=None, peer_urls=None):
    """The member called ``name``, or else the one with any of ``peer_urls``; None if none."""
    for member in members:
        if name and member.name == name:
            return member
    wanted = set(peer_urls or ())
    for member in members:
        if wanted & set(member.peer_urls):
            return member
    return None


def removal_refusal(members, healthy_ids, target):
    """Why removing ``target`` would endanger quorum, or None when it is safe.

    healthy_ids
        IDs of the members that answered a status request with a leader, just now.
    """
    if target.is_learner:
        return None
    voters = voting(members)
    remaining = [m for m in voters if m.id != target.id]
    if not remaining:
        return f"{target.name or target.id} is the last voting member; removing it ends the cluster"
    healthy_remaining = [m for m in remaining if m.id in healthy_ids]
    needed = quorum(len(voters))
    if len(healthy_remaining) < needed:
        names = ", ".join(m.name or m.id for m in healthy_remaining) or "none"
        return (
            f"removing {target.name or target.id} would leave {len(healthy_remaining)} healthy "
            f"voting member(s) ({names}); {needed} of the current {len(voters)} are needed "
            "to keep quorum through the change"
        )
    return None


def electing(rows):
    """Whether status ``rows`` show an election under way: a member that answered knows no
    leader (after a leader is lost, until the others elect one: about a second, longer on a
    loaded host; for good when quorum is lost). Health read then undercounts."""
    return any(r.get("leader_id") == "0" for r in rows)


def successor(rows, leaving_id):
    """The member to hand leadership to before ``leaving_id`` is removed or restarted.

    None when ``leaving_id`` is not the leader (nothing to hand over) or when no other
    healthy voting member exists. Otherwise the healthy voter, other than the one leaving,
    furthest along the raft log, so the hand-over does not wait for it to catch up.
    Removing or stopping a leader without a hand-over costs an election: about a second in
    which no write is acknowledged.

    rows
        Status rows as ``kubesalt_etcd.status`` returns them (``id``, ``healthy``, ``leader``,
        ``is_learner``, ``raft_index``).
    """
    if not any(r["leader"] and r["id"] == leaving_id for r in rows):
        return None
    candidates = [r for r in rows if r["healthy"] and not r["is_learner"] and r["id"] != leaving_id]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.get("raft_index", 0), r["id"]))["id"]


def join_step(members, name, peer_urls):
    """What ``member_present`` must do next for member ``name`` at ``peer_urls``.

    Returns ``(step, member)``:

    ``"present"``   a voting member with these peer URLs: nothing to do.
    ``"promote"``   a learner with these peer URLs (this member's own join, perhaps cut
                    short): start it if needed and promote it once in sync.
    ``"relocate"``  a member of this name at other peer URLs: it re-joins at a new address,
                    so the old entry is removed first (under the quorum rule).
    ``"wait"``      another member is joining (a learner): one join at a time.
    ``"add"``       absent: add it as a learner.
    """
    wanted = set(peer_urls)
    mine = find(members, name=name, peer_urls=peer_urls)
    if mine is not None and set(mine.peer_urls) == wanted and mine.name in ("", name):
        return ("promote" if mine.is_learner else "present"), mine
    if mine is not None and mine.name == name and not (set(mine.peer_urls) & wanted):
        return "relocate", mine
    if mine is not None:
        # Same URLs under another name, or a partial overlap: never guess which is right.
        raise ValueError(
            f"member {mine.describe()} overlaps {name} at {','.join(peer_urls)}; "
            "remove it or fix pillar"
        )
    other_learners = [m for m in members if m.is_learner]
    if other_learners:
        return "wait", other_learners[0]
    return "add", None


def initial_cluster(members, name, peer_urls):
    """``--initial-cluster`` for a member that joins an existing cluster: every current
    member (by name) plus this one. etcd compares it with the live list when it starts."""
    pairs = []
    for member in members:
        label = name if set(member.peer_urls) & set(peer_urls) else member.name
        pairs += [f"{label}={url}" for url in member.peer_urls]
    if not any(set(m.peer_urls) & set(peer_urls) for m in members):
        pairs += [f"{name}={url}" for url in peer_urls]
    return ",".join(pairs)


def bootstrap_cluster(peers):
    """``--initial-cluster`` for a brand-new cluster from ``{name: peer_url}``."""
    return ",".join(f"{name}={peers[name]}" for name in sorted(peers))


def cluster_env(state, initial, token):
    """The per-node file the join decision writes: etcd reads it as environment."""
    return (
        "# Written by kubesalt (kubesalt_etcd.member_present) when this member joined or founded\n"
        "# the cluster. etcd reads it only on its first start; afterwards its data dir rules.\n"
        f"ETCD_INITIAL_CLUSTER_STATE={state}\n"
        f"ETCD_INITIAL_CLUSTER={initial}\n"
        f"ETCD_INITIAL_CLUSTER_TOKEN={token}\n"
    )


def settled_env(name, peer_url, token):
    """The member-list file once the member runs from its data dir (etcd ignores it then).

    It names only the member itself, as ``existing``: should etcd ever start with an empty
    data dir (a lost disk, a wiped directory), it finds no peer to ask for the cluster and
    exits, instead of rejoining under its old identity with an empty log (which breaks
    raft's promise that an acknowledged write survives) or founding a cluster of its own.
    ``kubesalt_etcd.member_present`` then decides what to do, from the live cluster.
    """
    return (
        "# Written by kubesalt (kubesalt_etcd.member_present): this member runs from its data\n"
        "# dir. Without one, etcd finds no peer here and exits; the next highstate decides.\n"
        "ETCD_INITIAL_CLUSTER_STATE=existing\n"
        f"ETCD_INITIAL_CLUSTER={name}={peer_url}\n"
        f"ETCD_INITIAL_CLUSTER_TOKEN={token}\n"
    )


def lock_request(key, holder, lease_id):
    """A transaction that takes ``key`` for ``holder`` only if nobody holds it."""
    return {
        "compare": [{"key": b64(key), "target": "CREATE", "create_revision": "0"}],
        "success": [{"request_put": {"key": b64(key), "value": b64(holder), "lease": lease_id}}],
        "failure": [{"request_range": {"key": b64(key)}}],
    }


def lock_holder(txn_answer):
    """Who holds the lock after a failed :func:`lock_request` (None if unknown)."""
    for response in txn_answer.get("responses") or ():
        kvs = (response.get("response_range") or {}).get("kvs") or ()
        if kvs:
            return unb64(kvs[0]["value"])
    return None


def _url(ip, port):
    host = f"[{ip}]" if ":" in ip else ip
    return f"https://{host}:{port}"


def client_url(ip):
    return _url(ip, CLIENT_PORT)


def peer_url(ip):
    return _url(ip, PEER_PORT)


def master_peers(config):
    """``{name: peer_url}`` of every master in the cluster config."""
    return {name: peer_url(ip) for name, ip in kubesalt_core.pillar.masters(config)}


def master_endpoints(config):
    """Client URLs of every master, in name order."""
    return [client_url(ip) for _, ip in kubesalt_core.pillar.masters(config)]


def binary_path(config):
    """Where the etcd binary is, by ``artifacts:etcd:source`` (None when not given)."""
    if not (config.get("artifacts") or {}).get("etcd"):
        return None
    return kubesalt_core.artifact.executable(config, "etcd", "etcd")


# The system user etcd runs as (CIS 1.1.12: its data directory belongs to etcd:etcd).
USER = "etcd"


def node_settings(config, node_id, layout):
    """Everything the etcd SLS and its templates need for master ``node_id``.

    layout
        The ``kubesalt_core.pki.Layout`` of the (root-resolved) config: where the certs are.
    """
    paths = config["paths"]
    ip = config["nodes"][node_id]["ip"]
    tls = f"{paths['etcd_config_dir']}/pki"
    return {
        "name": node_id,
        # etcd runs as this user and owns its data; it reads copies of its certificates and
        # keys under ``tls_dir`` (the originals stay root's in the node's PKI directory).
        "user": USER,
        "tls_dir": tls,
        "tls_copies": {
            f"{tls}/server.crt": layout.cert("etcd-server"),
            f"{tls}/server.key": layout.key("etcd-server"),
            f"{tls}/peer.crt": layout.cert("etcd-peer"),
            f"{tls}/peer.key": layout.key("etcd-peer"),
            f"{tls}/ca.crt": layout.trusted_ca("etcd-ca"),
        },
        "ip": ip,
        "peer_urls": [peer_url(ip)],
        "client_urls": [client_url(ip)],
        "listen_client_urls": [client_url(ip), client_url("127.0.0.1")],
        "founders": master_peers(config),
        "token": f"kubesalt-{config['cluster']['name']}",
        "data_dir": paths["etcd_data_dir"],
        "config_dir": paths["etcd_config_dir"],
        "env_file": f"{paths['etcd_config_dir']}/etcd.env",
        "cluster_env_file": f"{paths['etcd_config_dir']}/cluster.env",
        "unit_file": f"{paths['systemd_dir']}/etcd.service",
        "binary": binary_path(config),
        "cert": f"{tls}/server.crt",
        "key": f"{tls}/server.key",
        "peer_cert": f"{tls}/peer.crt",
        "peer_key": f"{tls}/peer.key",
        "ca": f"{tls}/ca.crt",
    }


# --- peer connections -----------------------------------------------------------------------

# etcd's gauge of the peers a member has a working connection to, one line per peer (ids in
# hex; Prometheus orders the labels by name).
_ACTIVE_PEER = re.compile(
    r'^etcd_network_active_peers\{Local="([0-9a-f]+)",Remote="([0-9a-f]+)"\} 1(?:\.0)?$', re.M
)


def hex_id(member_id):
    """etcd's member id as its logs and metrics write it (the gateway gives it in decimal)."""
    return format(int(member_id), "x")


def peer_links(members, metrics):
    """``{name: sorted names it is connected to}``, or None for a member whose ``/metrics``
    could not be read; ``metrics`` is ``{member id: text or None}``."""
    names = {hex_id(m.id): m.name or m.id for m in members}
    links = {}
    for member in members:
        text = metrics.get(member.id)
        if text is None:
            links[member.name or member.id] = None
            continue
        remotes = [r for local, r in _ACTIVE_PEER.findall(text) if local == hex_id(member.id)]
        links[member.name or member.id] = sorted(names.get(r, r) for r in remotes)
    return links


def missing_links(links):
    """Each pair of members without a working connection in either member's view, as
    ``"a - b"`` (members whose view is unknown are left out)."""
    known = {name: set(peers) for name, peers in links.items() if peers is not None}
    pairs = set()
    for name, peers in known.items():
        for other in known:
            if other != name and other not in peers:
                pairs.add(" - ".join(sorted((name, other))))
    return sorted(pairs)


def connected_first(endpoints, members, links, avoid=()):
    """``endpoints`` ordered for a membership change: first the client URLs of members whose
    own view has a working connection to every other voting member, then the rest, the
    URLs in ``avoid`` last (stable within each group).

    etcd's strict reconfiguration check is made by the member that receives the change, on
    its own view. A member can go on calling a peer inactive while their streams carry raft
    traffic (a pipeline send that failed after the streams came up marks the peer inactive
    and only a new stream connection marks it active again: etcd-io/etcd#14523), so the
    same change that one member refuses for minutes another accepts at once.
    """
    voters = {m.name or m.id for m in members if not m.is_learner}
    complete = set()
    for m in members:
        name = m.name or m.id
        peers = links.get(name)
        if peers is not None and voters - {name} <= set(peers):
            complete.update(url.rstrip("/") for url in m.client_urls)
    return sorted(
        endpoints,
        key=lambda url: (url in avoid, url.rstrip("/") not in complete),
    )


def describe_links(links):
    """A sentence on the peer connections, for an error that may come from them."""
    unknown = sorted(name for name, peers in links.items() if peers is None)
    missing = missing_links(links)
    text = (
        f"peer connections missing: {', '.join(missing)}"
        if missing
        else "every pair of members is connected now"
    )
    if unknown:
        text += f" (no metrics from {', '.join(unknown)})"
    return text


# --- errors ---------------------------------------------------------------------------------

# etcd's messages for conditions that pass by themselves: the strict reconfiguration check
# right after a start or promote, a learner still catching up, a leader election.
_TRANSIENT = (
    "unhealthy cluster",
    "in sync with leader",
    "leader changed",
    "no leader",
    "request timed out",
    "connection closed",
    "too many requests",
)


def transient(status, message):
    """Whether an etcd error is worth retrying until a deadline."""
    text = (message or "").lower()
    return status == 503 or any(part in text for part in _TRANSIENT)


def explain(status, message, path):
    """A sentence for an etcd error on ``path``."""
    text = (message or "").strip() or "no message"
    hints = {
        "unhealthy cluster": "etcd's strict reconfig check: the member asked approves a "
        "membership change only once it has been connected to every voting member for 5 s, "
        "so not right after a member starts or is promoted, nor while one is down or cut off",
        "in sync with leader": "the learner has not caught up with the leader yet",
        "member not found": "no member has that ID",
        "too many learner": "another member is still joining as a learner",
        "peer urls already exists": "a member with these peer URLs is already listed",
    }
    hint = next((h for key, h in hints.items() if key in text.lower()), None)
    sentence = f"etcd answered {status} to {path}: {text}"
    return f"{sentence} ({hint})" if hint else sentence


def backoff(first=0.2, factor=1.6, ceiling=2.0):
    """Delays between retries: 0.2 s growing to at most 2 s."""
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, ceiling)


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text):
    return base64.b64decode(text).decode()
