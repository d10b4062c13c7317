"""The TCP ports kubesalt's components listen on: one name per port.

Data only (no imports), so that the pillar checks, the unit records and the manifests can
all read it.
"""

APISERVER_PORT = 6443
TYPHA_PORT = 5473
TYPHA_HEALTH_PORT = 9098
FELIX_HEALTH_PORT = 9099
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_METRICS_PORT = 10249
KUBE_PROXY_HEALTHZ_PORT = 10256
BGP_PORT = 179
# Kubernetes' default --service-node-port-range: kube-proxy answers these on every address
# of a worker, the loopback included.
NODE_PORTS = (30000, 32767)

# What listens on a worker besides the node-local apiserver proxy: {port: who}.
ON_WORKERS = {
    BGP_PORT: "BIRD (calico-bird)",
    FELIX_HEALTH_PORT: "calico-felix's health",
    KUBELET_HEALTHZ_PORT: "the kubelet's health",
    KUBE_PROXY_METRICS_PORT: "kube-proxy's metrics",
    KUBELET_PORT: "the kubelet's API",
    KUBE_PROXY_HEALTHZ_PORT: "kube-proxy's health",
}
