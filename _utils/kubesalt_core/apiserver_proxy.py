"""The node-local apiserver proxy: HAProxy on the loopback of every node that runs
Kubernetes components but no apiserver, spreading their TLS connections over every master.

Why HAProxy and not nginx's stream module: open-source nginx checks an upstream only
passively (a failed connection), so a master whose apiserver accepts connections but is
not ready would still get traffic; HAProxy asks each apiserver's ``/readyz`` itself (over
TLS, with its own client certificate), drops the sessions of a master it marks down so that
their clients reconnect at once, and reloads its config without closing the connections it
carries. The TLS of the clients passes through untouched (``mode tcp``): the kubelet and
the others still authenticate to the apiserver with their own certificates.

Decisions and the config text only: no Salt dunders, no I/O. The masters are passed in
(``kubesalt_core.pillar.masters``), since the pillar module imports this one for its checks.
"""

import ipaddress

import kubesalt_core.ports

LISTEN_ADDRESS = "127.0.0.1"
# A master is asked for /readyz every second and taken out after two failed answers (or
# two checks without one within CHECK_TIMEOUT): out of rotation within about 4 s.
CHECK_INTERVAL = "1s"
CHECK_TIMEOUT = "1s"
FALL = 2
RISE = 2
# A connection to a master that does not answer is tried on another one after this.
CONNECT_TIMEOUT = "1s"
# Watches are long-lived; a client that hears nothing for this long reconnects.
IDLE_TIMEOUT = "15m"
# After a reload the old process keeps the connections it carries (a master that is still
# there keeps its watches) for at most this long, then closes them; clients reconnect.
HARD_STOP_AFTER = "15m"


def wanted(config):
    """True when nodes without an apiserver use the local proxy: ``apiserver_proxy:enabled``,
    or when that is null, whenever ``cluster:apiserver_endpoint`` is not set."""
    enabled = (config.get("apiserver_proxy") or {}).get("enabled")
    if enabled is None:
        return not (config.get("cluster") or {}).get("apiserver_endpoint")
    return bool(enabled)


def runs_on(config, roles):
    """True when a node with ``roles`` runs the proxy: a worker that is not a master (a
    master's components use its own apiserver)."""
    return wanted(config) and "worker" in roles and "master" not in roles


def port(config):
    return int(config["apiserver_proxy"]["port"])


def url(config):
    """The apiserver URL of a node's kubeconfigs when it runs the proxy."""
    return f"https://{LISTEN_ADDRESS}:{port(config)}"


def backends(config, masters):
    """The masters the proxy sends connections to: all but those in
    ``apiserver_proxy:drain`` (``[(minion id, ip)]``)."""
    drained = set((config.get("apiserver_proxy") or {}).get("drain") or ())
    return [(name, ip) for name, ip in masters if name not in drained]


def config_text(config, masters, ca_file, client_cert):
    """HAProxy's configuration: the loopback listener and one server per master that is
    not drained.

    masters
        ``[(minion id, ip)]`` (``kubesalt_core.pillar.masters``).
    ca_file
        The CA that signs the apiservers' serving certificates (the checks verify it).
    client_cert
        The proxy's own client certificate for the checks; HAProxy finds its key beside it
        (same name, ``.key``: ``ssl-load-extra-del-ext``).
    """
    apiserver = kubesalt_core.ports.APISERVER_PORT
    lines = [
        "# Managed by kubesalt: edits are replaced on the next state run.",
        "# The node-local apiserver proxy (kubesalt_core.apiserver_proxy).",
        "global",
        # stdout is journald (the unit's StandardOutput); levels as syslog prefixes.
        "    log stdout format short daemon",
        "    ssl-load-extra-del-ext",
        f"    hard-stop-after {HARD_STOP_AFTER}",
        "",
        # No traffic log (a line per connection); a master marked down or up is logged
        # on stderr, which is journald too.
        "defaults",
        "    mode tcp",
        "    option redispatch 1",
        "    retries 3",
        f"    timeout connect {CONNECT_TIMEOUT}",
        f"    timeout client {IDLE_TIMEOUT}",
        f"    timeout server {IDLE_TIMEOUT}",
        f"    timeout check {CHECK_TIMEOUT}",
        "",
        "frontend apiserver",
        f"    bind {LISTEN_ADDRESS}:{port(config)}",
        "    default_backend apiservers",
        "",
        "backend apiservers",
        "    balance leastconn",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        (
            f"    default-server check check-ssl verify required ca-file {ca_file}"
            f" crt {client_cert} inter {CHECK_INTERVAL} fall {FALL} rise {RISE}"
            " on-marked-down shutdown-sessions"
        ),
    ]
    lines += [f"    server {name} {ip}:{apiserver}" for name, ip in backends(config, masters)]
    return "\n".join(lines) + "\n"


def _unreachable(ip):
    try:
        address = ipaddress.ip_address(str(ip))
    except ValueError:
        return False  # the field check reports it
    return address.is_loopback or address.is_unspecified or address.is_multicast


def problems(config, masters, pillar_key):
    """``[(key, message)]`` for a proxy that could not work: asked for together with an
    external endpoint, a port another component of a worker uses, a drain of something
    that is not a master or of every master, a master no node can reach."""
    found = []
    settings = config.get("apiserver_proxy") or {}
    endpoint = (config.get("cluster") or {}).get("apiserver_endpoint")
    if settings.get("enabled") is True and endpoint:
        found.append(
            (
                f"{pillar_key}:apiserver_proxy:enabled",
                f"true while {pillar_key}:cluster:apiserver_endpoint is {endpoint!r}: nodes "
                "use either the local proxy or that endpoint; set enabled to null (the proxy "
                "unless an endpoint is set) or false, or remove apiserver_endpoint",
            )
        )
        return found
    if not wanted(config):
        return found
    chosen = settings.get("port")
    low, high = kubesalt_core.ports.NODE_PORTS
    if chosen in kubesalt_core.ports.ON_WORKERS:
        found.append(
            (
                f"{pillar_key}:apiserver_proxy:port",
                f"{chosen} is the port of {kubesalt_core.ports.ON_WORKERS[chosen]} on every "
                "worker; "
                "expected a port no component of a worker listens on (the default: 6443)",
            )
        )
    elif isinstance(chosen, int) and low <= chosen <= high:
        found.append(
            (
                f"{pillar_key}:apiserver_proxy:port",
                f"{chosen} is in the NodePort range {low}-{high}, which kube-proxy answers on "
                "every address of a worker; expected a port outside it (the default: 6443)",
            )
        )
    names = {name for name, _ in masters}
    for index, name in enumerate(settings.get("drain") or ()):
        if name not in names:
            found.append(
                (
                    f"{pillar_key}:apiserver_proxy:drain:{index}",
                    f"{name!r} is not a master; expected minion ids of masters",
                )
            )
    if masters and not backends(config, masters):
        found.append(
            (
                f"{pillar_key}:apiserver_proxy:drain",
                "drains every master: the workers' proxies would reach no apiserver; "
                "expected at least one master left",
            )
        )
    for name, ip in masters:
        if _unreachable(ip):
            found.append(
                (
                    f"{pillar_key}:nodes:{name}:ip",
                    f"{ip} is not an address other nodes can reach; the apiserver proxy of "
                    "every worker would send it connections",
                )
            )
    return found
