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
  kubelet:
    # This machine's kernel mounts cgroup v1 (`stat -fc %T /sys/fs/cgroup` says tmpfs):
    # the kubelet runs there only when told to (KEP-5573).
    fail_cgroup_v1: false
  artifacts:
    # Routers run Debian's bird2. Every other artifact is built by the lab from its Go
    # module (`kubesalt-lab build`) and served on the lab bridge: the lab points these
    # entries at its archives and their sums in the pillar copy it serves.
    bird:
      source: package
      package: bird2
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
