# The lab cluster: 3 masters, 2 workers, 1 route reflector, all addresses in 198.18.0.0/15
# (reserved for benchmarking, never routed out). `make lab` builds exactly these hosts.
kubesalt:
  cluster:
    name: lab
    domain: cluster.local
  network:
    as_number: 64512
    node_cidr: 198.18.0.0/24
    pod_cidr: 198.19.0.0/16
    service_cidr: 198.18.16.0/20
    cluster_dns_ip: 198.18.16.10
    bgp:
      fast_timers: true      # sessions up within a second in the lab
  versions:
    containerd: "1.6.20"   # Debian bookworm's package: config schema 2
  artifacts:
    # What Debian ships on the lab hosts. kube-*, Calico, crictl and the CNI plugins cannot
    # be had there: their units and configs are written and never started.
    etcd:
      source: package
      package: etcd-server
    containerd:
      source: package
      package: containerd
    runc:
      source: package
      package: runc
    bird:
      source: package
      package: bird2
    kubernetes:
      source: unavailable
      reason: no Kubernetes binaries in this lab
    calico_node:
      source: unavailable
      reason: no Calico binaries in this lab
    calico_typha:
      source: unavailable
      reason: no Calico binaries in this lab
    calico_crds:
      source: unavailable
      reason: no Calico release in this lab
    cni_plugins:
      source: unavailable
      reason: no CNI plugin release in this lab
    crictl:
      source: unavailable
      reason: no crictl release in this lab
  nodes:
    master-1:
      roles: [master]
      ip: 198.18.0.11
    master-2:
      roles: [master]
      ip: 198.18.0.12
    master-3:
      roles: [master]
      ip: 198.18.0.13
    worker-1:
      roles: [worker]
      ip: 198.18.0.21
    worker-2:
      roles: [worker]
      ip: 198.18.0.22
    router-1:
      roles: [router]
      ip: 198.18.0.31
