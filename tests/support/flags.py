"""What a built program says it accepts, and the few names no program can vouch for.

Kubernetes' programs, containerd and etcd list their flags in ``--help``; kube-proxy and the
kubelet validate their config files (strict decoding); Typha and felix log every variable
they parse at start. Only what none of them reports stays in a list kept by hand, with why.
"""

import re

_FLAG_RE = re.compile(r"^\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)", re.MULTILINE)

# calico-node reads these with os.Getenv (its startup and confd: datastore, node name and
# address, BGP backend; startup's WAIT_FOR_DATASTORE, NO_DEFAULT_POOLS and CLUSTER_TYPE in
# node/pkg/lifecycle/startup/startup.go); felix's config loader does not see them and
# nothing reports an unknown one. Checked by hand against Calico's "Configure calico/node"
# reference and that source.
CALICO_NODE_PLAIN_VARIABLES = frozenset(
    [
        "DATASTORE_TYPE",
        "KUBECONFIG",
        "NODENAME",
        "IP",
        "CALICO_NETWORKING_BACKEND",
        "WAIT_FOR_DATASTORE",
        "NO_DEFAULT_POOLS",
        "CLUSTER_TYPE",
    ]
)
# Typha's Kubernetes client reads KUBECONFIG itself (client-go), not through its config.
TYPHA_PLAIN_VARIABLES = frozenset(["KUBECONFIG"])


def help_flags(text):
    """Every ``--flag`` a ``--help`` text lists."""
    return set(_FLAG_RE.findall(text))


def flag_names(argv):
    """``name`` of every ``--name=value`` / ``--name`` word in ``argv``."""
    return [w[2:].split("=", 1)[0] for w in argv if w.startswith("--")]


def etcd_flag(variable):
    """etcd reads ``--some-flag`` from ``ETCD_SOME_FLAG``."""
    return variable[len("ETCD_") :].lower().replace("_", "-")


def parsed_parameters(log):
    """The (lower-cased) parameters Typha's or felix's config loader parsed at start."""
    return {m.lower() for m in re.findall(r"Parsing value for (\w+):", log)}


def rejected_values(log):
    """Parameters whose value the loader replaced with its default."""
    return re.findall(r"failed to parse config parameter (\w+)", log)
