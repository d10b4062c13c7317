"""The bad-pillar corpus: one broken variant of the lab pillar per case, with the exact
problem kubesalt must report. The unit tier checks the messages; the functional tier runs a
highstate on each one and checks that nothing changed.
"""

from kubesalt_lab.pillar import lab_config
from tests.support.bad_pillar_case import BadPillar
from tests.support.bad_pillar_case import set_key as _set
from tests.support.bad_pillars_day2 import DAY2_CASES
from tests.support.bad_pillars_security import SECURITY_CASES


def _drop_nodes(*ids):
    def mutate(pillar):
        for minion_id in ids:
            del pillar["nodes"][minion_id]

    return mutate


def _compose(*mutations):
    def mutate(pillar):
        for mutation in mutations:
            mutation(pillar)

    return mutate


def _add_node(minion_id, roles, ip):
    return lambda p: p["nodes"].__setitem__(minion_id, {"roles": roles, "ip": ip})


_AS = "an AS number, an integer from 1 to 4294967294 (64512-65534 for a private AS)"
_CIDR = "an IPv4 network in CIDR notation such as '198.18.0.0/24'"
_IP = "an IPv4 address such as '198.18.0.10'"
_PINNED_KUBERNETES = lab_config()["versions"]["kubernetes"]
_VERSION = "a version string such as '1.37.0' (quote it in YAML)"
_ROLES = "a list of roles from: master, worker, router"
_DISJOINT = "expected node, pod, service and load balancer ranges to be disjoint"
_TOP_KEYS = (
    "apiserver, apiserver_proxy, artifacts, cluster, containerd, etcd, heal, images, ingress, "
    "kube_proxy, kubelet, "
    "network, nodes, paths, pki, tls, upgrade, versions"
)
_NODE_NAME = (
    "is not a valid Kubernetes node name; expected lowercase letters, digits, '-' and '.' "
    "(RFC 1123)"
)

CASES = [
    BadPillar(
        "pillar-not-a-mapping",
        lambda p: "lab",
        "kubesalt: expected a mapping, got str",
    ),
    BadPillar(
        "unknown-top-level-key",
        _set("netwrok", {}),
        f"kubesalt:netwrok: unknown key; expected one of: {_TOP_KEYS} (did you mean 'network'?)",
    ),
    BadPillar(
        "apiserver-service-routing",
        _set("apiserver:service_routing", "vip"),
        "kubesalt:apiserver:service_routing: 'vip' is not one of: endpoints, cluster_ip",
    ),
    BadPillar(
        "unknown-network-key",
        _set("network:as_numbr", 64512),
        "kubesalt:network:as_numbr: unknown key; expected one of: as_number, bgp, "
        "cluster_dns_ip, dns_upstream, ip_pools, load_balancer_cidr, node_cidr, pod_cidr, "
        "service_cidr (did you mean 'as_number'?)",
    ),
    BadPillar(
        "unknown-node-key",
        _set("nodes:worker-1:rolse", ["worker"]),
        "kubesalt:nodes:worker-1:rolse: unknown key; expected one of: as_number, ip, roles, "
        "router_id (did you mean 'roles'?)",
    ),
    BadPillar(
        "unknown-version-key",
        _set("versions", {"kubernets": "1.37.0"}),
        "kubesalt:versions:kubernets: unknown key; expected one of: bird, calico, cni_plugins, "
        "containerd, coredns, crictl, etcd, haproxy, ingress_nginx, kubernetes, nginx_ingress, "
        "runc (did you mean 'kubernetes'?)",
    ),
    BadPillar(
        "network-not-a-mapping",
        _set("network", "198.18.0.0/24"),
        "kubesalt:network: expected a mapping, got str",
    ),
    BadPillar(
        "unknown-role",
        _set("nodes:worker-1:roles", ["wrker"]),
        "kubesalt:nodes:worker-1:roles:0: unknown role 'wrker'; expected one of: master, "
        "worker, router (did you mean 'worker'?)",
    ),
    BadPillar(
        "roles-not-a-list",
        _set("nodes:master-1:roles", "master"),
        f"kubesalt:nodes:master-1:roles: expected {_ROLES}, got str 'master'",
    ),
    BadPillar(
        "roles-empty",
        _set("nodes:worker-2:roles", []),
        f"kubesalt:nodes:worker-2:roles: empty; expected {_ROLES}",
    ),
    BadPillar(
        "role-listed-twice",
        _set("nodes:master-2:roles", ["master", "master"]),
        "kubesalt:nodes:master-2:roles:1: role 'master' is listed twice",
    ),
    BadPillar(
        "router-and-worker-on-one-host",
        _set("nodes:router-1:roles", ["router", "worker"]),
        "kubesalt:nodes:router-1:roles: roles 'router' and 'worker' cannot share a host: both "
        "run a BGP speaker on port 179; put the route reflector on its own host",
    ),
    BadPillar(
        "node-ip-malformed",
        _set("nodes:worker-1:ip", "198.18.0.300"),
        f"kubesalt:nodes:worker-1:ip: '198.18.0.300' is not {_IP}",
    ),
    BadPillar(
        "node-ip-missing",
        _set("nodes:worker-2:ip", None),
        f"kubesalt:nodes:worker-2:ip: missing; expected {_IP}",
    ),
    BadPillar(
        "node-ip-duplicate",
        _set("nodes:worker-2:ip", "198.18.0.21"),
        "kubesalt:nodes:worker-2:ip: duplicate node IP 198.18.0.21: already used by "
        "'worker-1'; expected one address per node",
    ),
    BadPillar(
        "node-ip-outside-node-cidr",
        _set("nodes:worker-2:ip", "198.18.1.22"),
        "kubesalt:nodes:worker-2:ip: 198.18.1.22 is outside node_cidr 198.18.0.0/24",
    ),
    BadPillar(
        "node-ip-is-network-address",
        _set("nodes:router-1:ip", "198.18.0.0"),
        "kubesalt:nodes:router-1:ip: 198.18.0.0 is the network or broadcast address of "
        "node_cidr 198.18.0.0/24; expected a host address",
    ),
    BadPillar(
        "node-ip-inside-service-cidr",
        _set("nodes:worker-1:ip", "198.18.16.21"),
        "kubesalt:nodes:worker-1:ip: 198.18.16.21 lies inside service_cidr 198.18.16.0/20; "
        "expected a node address outside pod and service ranges",
    ),
    BadPillar(
        "minion-id-empty",
        _add_node("", ["worker"], "198.18.0.23"),
        "kubesalt:nodes: a node has an empty minion id (''); expected the minion's id as the key",
    ),
    BadPillar(
        "minion-id-null",
        _add_node(None, ["worker"], "198.18.0.23"),
        "kubesalt:nodes: a node has an empty minion id (None); expected the minion's id as the key",
    ),
    BadPillar(
        "minion-id-duplicate",
        _add_node("Worker-1", ["worker"], "198.18.0.23"),
        "kubesalt:nodes:Worker-1: duplicate minion id: 'Worker-1' names the same node as "
        "'worker-1'",
    ),
    BadPillar(
        "minion-id-not-a-node-name",
        _add_node("worker_3", ["worker"], "198.18.0.23"),
        f"kubesalt:nodes:worker_3: minion id 'worker_3' {_NODE_NAME}",
    ),
    BadPillar(
        "nodes-empty",
        _set("nodes", {}),
        "kubesalt:nodes: no nodes; expected a mapping of minion id to {roles: [...], ip: ...}",
    ),
    BadPillar(
        "nodes-not-a-mapping",
        _set("nodes", ["master-1", "worker-1"]),
        "kubesalt:nodes: expected a mapping of minion id to node, got list",
    ),
    BadPillar(
        "no-master",
        _drop_nodes("master-1", "master-2", "master-3"),
        "kubesalt:nodes: no node has the role 'master'; expected 1, 3 or 5 masters",
    ),
    BadPillar(
        "even-number-of-masters",
        _drop_nodes("master-3"),
        "kubesalt:nodes: 2 masters (master-1, master-2): an even number of etcd members "
        "tolerates no more failures than 1; expected an odd number",
        level="warning",
    ),
    BadPillar(
        "no-worker",
        _compose(_drop_nodes("worker-2"), _set("nodes:worker-1:roles", ["router"])),
        "kubesalt:nodes: no node has the role 'worker': pods have nowhere to run",
        level="warning",
    ),
    BadPillar(
        "pod-cidr-malformed",
        _set("network:pod_cidr", "198.19.0.0/33"),
        f"kubesalt:network:pod_cidr: '198.19.0.0/33' is not {_CIDR}",
    ),
    BadPillar(
        "pod-cidr-host-bits-set",
        _set("network:pod_cidr", "198.19.0.1/16"),
        "kubesalt:network:pod_cidr: '198.19.0.1/16' has host bits set; expected the network "
        "address 198.19.0.0/16",
    ),
    BadPillar(
        "service-cidr-without-prefix",
        _set("network:service_cidr", "198.18.16.0"),
        f"kubesalt:network:service_cidr: '198.18.16.0' is not {_CIDR}",
    ),
    BadPillar(
        "node-cidr-missing",
        _set("network:node_cidr", None),
        f"kubesalt:network:node_cidr: missing; expected {_CIDR}",
    ),
    BadPillar(
        "pod-cidr-overlaps-service-cidr",
        _set("network:pod_cidr", "198.18.16.0/21"),
        f"kubesalt:network:service_cidr: 198.18.16.0/20 overlaps pod_cidr 198.18.16.0/21; "
        f"{_DISJOINT}",
    ),
    BadPillar(
        "pod-cidr-overlaps-node-cidr",
        _set("network:pod_cidr", "198.18.0.0/16"),
        f"kubesalt:network:pod_cidr: 198.18.0.0/16 overlaps node_cidr 198.18.0.0/24; {_DISJOINT}",
    ),
    BadPillar(
        "service-cidr-overlaps-node-cidr",
        _set("network:service_cidr", "198.18.0.0/23"),
        f"kubesalt:network:service_cidr: 198.18.0.0/23 overlaps node_cidr 198.18.0.0/24; "
        f"{_DISJOINT}",
    ),
    BadPillar(
        "service-cidr-too-large",
        lambda p: p["network"].update(service_cidr="10.0.0.0/8", cluster_dns_ip="10.0.0.10"),
        "kubesalt:network:service_cidr: /8 is too large; kube-apiserver expects a prefix of /12 "
        "or longer",
    ),
    BadPillar(
        "cluster-dns-ip-outside-service-cidr",
        _set("network:cluster_dns_ip", "198.18.40.10"),
        "kubesalt:network:cluster_dns_ip: 198.18.40.10 is outside service_cidr 198.18.16.0/20; "
        "expected an address inside it",
    ),
    BadPillar(
        "cluster-dns-ip-is-kubernetes-service",
        _set("network:cluster_dns_ip", "198.18.16.1"),
        "kubesalt:network:cluster_dns_ip: 198.18.16.1 is reserved in 198.18.16.0/20 (network, "
        "broadcast or the kubernetes service 198.18.16.1); expected another address",
    ),
    BadPillar(
        "cluster-dns-ip-malformed",
        _set("network:cluster_dns_ip", "dns"),
        f"kubesalt:network:cluster_dns_ip: 'dns' is not {_IP}",
    ),
    BadPillar(
        "as-number-out-of-range",
        _set("network:as_number", 4294967295),
        f"kubesalt:network:as_number: 4294967295 is out of range; expected {_AS}",
    ),
    BadPillar(
        "as-number-zero",
        _set("network:as_number", 0),
        f"kubesalt:network:as_number: 0 is out of range; expected {_AS}",
    ),
    BadPillar(
        "as-number-reserved",
        _set("network:as_number", 23456),
        f"kubesalt:network:as_number: 23456 is a reserved AS number; expected {_AS}",
    ),
    BadPillar(
        "as-number-a-string",
        _set("network:as_number", "64512"),
        f"kubesalt:network:as_number: '64512' is a str; expected {_AS}",
    ),
    BadPillar(
        "as-number-a-bool",
        _set("network:as_number", True),
        f"kubesalt:network:as_number: True is a bool; expected {_AS}",
    ),
    BadPillar(
        "version-missing",
        _set("versions", {"etcd": None}),
        f"kubesalt:versions:etcd: missing; expected {_VERSION}",
    ),
    BadPillar(
        "version-not-a-version",
        _set("versions", {"kubernetes": "latest"}),
        f"kubesalt:versions:kubernetes: 'latest' is not {_VERSION}",
    ),
    BadPillar(
        "version-unquoted-float",
        _set("versions", {"calico": 3.32}),
        f"kubesalt:versions:calico: 3.32 is not {_VERSION}",
    ),
    BadPillar(
        "cluster-name-not-a-dns-label",
        _set("cluster:name", "Lab Cluster"),
        "kubesalt:cluster:name: 'Lab Cluster' is not a DNS label (lowercase letters, digits and "
        "'-', at most 63 characters)",
    ),
    BadPillar(
        "dns-domain-malformed",
        _set("cluster:domain", "cluster..local"),
        "kubesalt:cluster:domain: 'cluster..local' is not a DNS domain such as 'cluster.local'",
    ),
    BadPillar(
        "ingress-unknown-controller",
        _set("ingress:controller", "traefik"),
        "kubesalt:ingress:controller: 'traefik' is not one of: nginx, ingress-nginx",
    ),
    BadPillar(
        "ingress-node-port-out-of-range",
        _set("ingress:http_node_port", 80),
        "kubesalt:ingress:http_node_port: 80 is not a NodePort, a whole number from 30000 to 32767",
    ),
    BadPillar(
        "bgp-flag-not-a-bool",
        _set("network:bgp:ebgp", "yes"),
        "kubesalt:network:bgp:ebgp: 'yes' is not true or false",
    ),
    BadPillar(
        "fail-cgroup-v1-not-a-bool",
        _set("kubelet:fail_cgroup_v1", "no"),
        "kubesalt:kubelet:fail_cgroup_v1: 'no' is not true or false",
    ),
    BadPillar(
        "kube-proxy-unknown-mode",
        _set("kube_proxy:mode", "userspace"),
        "kubesalt:kube_proxy:mode: 'userspace' is not one of: ipvs, nftables, iptables",
    ),
    BadPillar(
        "registry-mirror-not-a-url",
        _set("containerd:registry_mirrors", {"registry.k8s.io": ["mirror.example.internal"]}),
        "kubesalt:containerd:registry_mirrors:registry.k8s.io:0: 'mirror.example.internal' is "
        "not an http(s):// URL",
    ),
    BadPillar(
        "image-reference-unparsable",
        _set("images:coredns", "coredns/CoreDNS:1.14.6"),
        "kubesalt:images:coredns: 'coredns/CoreDNS:1.14.6' is not a container image reference "
        "([registry/]path[:tag][@digest], lowercase path)",
    ),
    BadPillar(
        "ip-pool-outside-pod-cidr",
        _set("network:ip_pools", [{"name": "outside", "cidr": "198.20.0.0/16"}]),
        "kubesalt:network:ip_pools:0:cidr: 198.20.0.0/16 is not inside network:pod_cidr "
        "198.19.0.0/16",
    ),
    BadPillar(
        "dns-upstream-not-an-address",
        _set("network:dns_upstream", ["resolver.example"]),
        "kubesalt:network:dns_upstream:0: 'resolver.example' is not an IPv4 address such as "
        "'198.18.0.10'",
    ),
    BadPillar(
        "ip-pool-block-size-out-of-range",
        _set("network:ip_pools", [{"name": "pods", "cidr": "198.19.0.0/16", "block_size": 33}]),
        "kubesalt:network:ip_pools:0:block_size: 33 is not Calico's IPv4 block size, a whole "
        "number from 20 to 32",
    ),
    BadPillar(
        "heal-backoff-not-a-list",
        _set("heal:backoff_seconds", "5s"),
        "kubesalt:heal:backoff_seconds: '5s' is not a list of 1 to 10 whole numbers of "
        "seconds, each from 0 to 3600",
    ),
    BadPillar(
        "heal-budget-zero",
        _set("heal:budget_attempts", 0),
        "kubesalt:heal:budget_attempts: 0 is not a number of repairs, a whole number from 1 to 100",
    ),
    BadPillar(
        "router-in-another-as",
        _set("nodes:router-1:as_number", 65001),
        "kubesalt:nodes:router-1:as_number: 65001 is not the cluster AS 64512; workers and "
        "routers form one AS (set network:bgp:ebgp: true to peer across AS on purpose)",
    ),
    BadPillar(
        "load-balancer-cidr-overlaps-pod-cidr",
        _set("network:load_balancer_cidr", "198.19.4.0/24"),
        f"kubesalt:network:load_balancer_cidr: 198.19.4.0/24 overlaps pod_cidr 198.19.0.0/16; "
        f"{_DISJOINT}",
    ),
    BadPillar(
        "load-balancer-cidr-overlaps-node-cidr",
        _set("network:load_balancer_cidr", "198.18.0.128/25"),
        f"kubesalt:network:load_balancer_cidr: 198.18.0.128/25 overlaps node_cidr "
        f"198.18.0.0/24; {_DISJOINT}",
    ),
    BadPillar(
        "load-balancer-cidr-malformed",
        _set("network:load_balancer_cidr", "198.18.32.1/24"),
        "kubesalt:network:load_balancer_cidr: '198.18.32.1/24' has host bits set; expected "
        "the network address 198.18.32.0/24",
    ),
    BadPillar(
        "ingress-address-outside-its-pool",
        _set("ingress:address", "198.18.33.7"),
        "kubesalt:ingress:address: 198.18.33.7 is not a host address of "
        "network:load_balancer_cidr 198.18.32.0/24; expected an address inside it",
    ),
    BadPillar(
        "ingress-address-without-a-pool",
        _compose(_set("network:load_balancer_cidr", None), _set("ingress:address", "198.18.32.7")),
        "kubesalt:ingress:address: 198.18.32.7 needs network:load_balancer_cidr, the pool it "
        "comes from; expected that set too, or no address",
    ),
    BadPillar(
        "ingress-node-ports-collide",
        _compose(_set("ingress:http_node_port", 30080), _set("ingress:https_node_port", 30080)),
        "kubesalt:ingress:https_node_port: 30080 is also http_node_port; expected two "
        "different NodePorts",
    ),
    BadPillar(
        "ingress-tls-secret-not-namespaced",
        _set("ingress:default_tls_secret", "default-server"),
        "kubesalt:ingress:default_tls_secret: 'default-server' is not namespace/name (a DNS "
        "label, '/', a lowercase DNS name)",
    ),
    BadPillar(
        "ingress-config-value-not-a-string",
        _set("ingress:config", {"worker-processes": 2}),
        "kubesalt:ingress:config:worker-processes: expected a string (quote it), got int",
    ),
    BadPillar(
        "kube-proxy-ipvs-deprecated",
        _set("kube_proxy:mode", "ipvs"),
        "kubesalt:kube_proxy:mode: ipvs is deprecated since Kubernetes 1.35 (KEP-5495) and "
        f"versions:kubernetes is {_PINNED_KUBERNETES}; nftables is its successor (kernel 5.13 "
        "or newer): kube_proxy:mode: nftables",
        level="warning",
    ),
    BadPillar(
        "router-in-another-as-beside-a-warning",
        _compose(_set("nodes:router-1:as_number", 65002), _drop_nodes("master-3")),
        "kubesalt:nodes:router-1:as_number: 65002 is not the cluster AS 64512; workers and "
        "routers form one AS (set network:bgp:ebgp: true to peer across AS on purpose)",
    ),
    BadPillar(
        "artifact-unknown-source",
        _set("artifacts:etcd", {"source": "git"}),
        "kubesalt:artifacts:etcd:source: 'git' is not one of: url, package, path",
    ),
    BadPillar(
        "artifact-url-without-sha256",
        _set("artifacts:etcd", {"source": "url", "url": "http://127.0.0.1/etcd.tar.gz"}),
        "kubesalt:artifacts:etcd:sha256: None is not a sha256 (64 lowercase hex digits, quoted in "
        "YAML)",
    ),
    BadPillar(
        "artifact-relative-path",
        _set("artifacts:etcd", {"source": "path", "path": "bin/etcd"}),
        "kubesalt:artifacts:etcd:path: 'bin/etcd' is not an absolute path",
    ),
    BadPillar(
        "artifact-field-of-another-source",
        _set("artifacts:containerd", {"source": "package", "package": "containerd", "url": "x"}),
        "kubesalt:artifacts:containerd:url: unknown key; expected one of: package, source",
    ),
    BadPillar(
        "artifact-unknown-name",
        _set("artifacts:kubernets", {"source": "package", "package": "kubernetes"}),
        "kubesalt:artifacts:kubernets: unknown artifact; expected one of: kubernetes, etcd, "
        "containerd, runc, crictl, cni_plugins, calico_node, calico_typha, calico_cni, bird, "
        "haproxy, calico_crds",
    ),
    BadPillar(
        "artifact-members-not-a-mapping",
        _set(
            "artifacts:etcd",
            {"source": "url", "url": "http://127.0.0.1/e.tgz", "sha256": "a" * 64, "members": []},
        ),
        "kubesalt:artifacts:etcd:members: expected a mapping of binary name to its path inside "
        "the archive",
    ),
    BadPillar(
        "pki-unknown-key-type",
        _set("pki", {"key_type": "dsa-1024"}),
        "kubesalt:pki:key_type: 'dsa-1024' is not one of: ecdsa-p256, rsa-2048, rsa-4096",
    ),
    BadPillar(
        "pki-renewal-window-longer-than-lifetime",
        _set("pki", {"leaf_days": 30, "renew_before_days": 30}),
        "kubesalt:pki:renew_before_days: 30 is not shorter than leaf_days 30; every run would "
        "re-issue every cert",
    ),
    BadPillar(
        "pki-ca-host-not-a-master",
        _set("pki", {"ca_host": "worker-1"}),
        "kubesalt:pki:ca_host: 'worker-1' is not a master; the CA lives on a master",
    ),
    BadPillar(
        "pki-ca-host-unknown",
        _set("pki", {"ca_host": "master-9"}),
        "kubesalt:pki:ca_host: 'master-9' is not a node; expected one of the masters",
    ),
    BadPillar(
        "pki-extra-san-malformed",
        _set("pki", {"apiserver_extra_sans": ["api.lab", "not a name"]}),
        "kubesalt:pki:apiserver_extra_sans:1: 'not a name' is neither a DNS name nor an IP address",
    ),
    BadPillar(
        "pki-lifetime-zero",
        _set("pki", {"ca_days": 0}),
        "kubesalt:pki:ca_days: 0 is not a whole number of days, at least 1",
    ),
    BadPillar(
        "apiserver-proxy-with-an-endpoint",
        lambda p: {
            **p,
            "cluster": {**p["cluster"], "apiserver_endpoint": "198.18.0.11"},
            "apiserver_proxy": {"enabled": True},
        },
        "kubesalt:apiserver_proxy:enabled: true while kubesalt:cluster:apiserver_endpoint is "
        "'198.18.0.11': nodes use either the local proxy or that endpoint; set enabled to null "
        "(the proxy unless an endpoint is set) or false, or remove apiserver_endpoint",
    ),
    BadPillar(
        "apiserver-proxy-port-of-the-kubelet",
        _set("apiserver_proxy", {"port": 10250}),
        "kubesalt:apiserver_proxy:port: 10250 is the port of the kubelet's API on every worker; "
        "expected a port no component of a worker listens on (the default: 6443)",
    ),
    BadPillar(
        "apiserver-proxy-port-in-the-node-port-range",
        _set("apiserver_proxy", {"port": 30443}),
        "kubesalt:apiserver_proxy:port: 30443 is in the NodePort range 30000-32767, which "
        "kube-proxy answers on every address of a worker; expected a port outside it (the "
        "default: 6443)",
    ),
    BadPillar(
        "apiserver-proxy-drains-every-master",
        _set("apiserver_proxy", {"drain": ["master-1", "master-2", "master-3"]}),
        "kubesalt:apiserver_proxy:drain: drains every master: the workers' proxies would reach "
        "no apiserver; expected at least one master left",
    ),
    BadPillar(
        "apiserver-proxy-drains-a-worker",
        _set("apiserver_proxy", {"drain": ["worker-1"]}),
        "kubesalt:apiserver_proxy:drain:0: 'worker-1' is not a master; expected minion ids of "
        "masters",
    ),
    BadPillar(
        "apiserver-proxy-port-not-a-port",
        _set("apiserver_proxy", {"port": 70000}),
        "kubesalt:apiserver_proxy:port: 70000 is not a TCP port, a whole number from 1 to 65535",
    ),
    BadPillar(
        "apiserver-proxy-master-on-the-loopback",
        lambda p: {
            **p,
            "network": {**p["network"], "node_cidr": "127.0.0.0/8"},
            # The only master: no worker's proxy could reach any apiserver.
            "nodes": {
                "master-1": {"roles": ["master"], "ip": "127.0.0.11"},
                "worker-1": {"roles": ["worker"], "ip": "127.0.0.21"},
            },
        },
        "kubesalt:nodes:master-1:ip: 127.0.0.11 is not an address other nodes can reach; the "
        "apiserver proxy of every worker would send it connections",
    ),
    BadPillar(
        "path-relative",
        _set("paths", {"pki_dir": "etc/kubernetes/pki"}),
        "kubesalt:paths:pki_dir: 'etc/kubernetes/pki' is not an absolute path",
    ),
    *SECURITY_CASES,
    *DAY2_CASES,
]
