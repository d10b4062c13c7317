"""What every builder of a component's command line and files needs: the node, its
config and PKI layout (:class:`Context`), and the small writers they share.

No Salt dunders and no I/O here.
"""

from dataclasses import dataclass

import yaml

import kubesalt_core.pki

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
# calico-node's confd writes BIRD's config here and reaches BIRD through this socket.
CALICO_RUN_DIR = "/var/run/calico"
BIRD_SOCKET = "/run/bird/bird.ctl"


@dataclass(frozen=True)
class Context:
    config: dict
    node_id: str
    layout: kubesalt_core.pki.Layout

    @property
    def paths(self):
        return self.config["paths"]

    @property
    def ip(self):
        return self.config["nodes"][self.node_id]["ip"]

    @property
    def network(self):
        return self.config["network"]

    def kubeconfig(self, name):
        return self.layout.kubeconfig(name)


def flags(pairs):
    return [f"--{name}={value}" for name, value in pairs]


def yaml_text(document):
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=True)


def env_file(values):
    lines = ["# Managed by kubesalt: edits are replaced on the next state run."]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def is_ca_host(config, node_id):
    return kubesalt_core.pki.ca_host(config) == node_id
