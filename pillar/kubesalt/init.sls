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
    # Services of type LoadBalancer (the ingress): announced by the workers to the router.
    load_balancer_cidr: 198.18.32.0/24
    cluster_dns_ip: 198.18.16.10
    # CoreDNS answers the cluster's names only: no resolver outside the lab is asked.
    dns_upstream: []
    bgp:
      fast_timers: true      # sessions up within a second in the lab
  kubelet:
    # This machine's kernel mounts cgroup v1 (`stat -fc %T /sys/fs/cgroup` says tmpfs):
    # the kubelet runs there only when told to (KEP-5573).
    fail_cgroup_v1: false
  kube_proxy:
    # No IPVS in this machine's kernel (`zcat /proc/config.gz`: CONFIG_IP_VS is not set);
    # nf_tables is built in.
    mode: nftables
    # The conntrack table size is the machine's (net.netfilter.nf_conntrack_max is
    # read-only outside the first network namespace): the lab's nodes leave it alone.
    conntrack_max_per_core: 0
  ingress:
    # The lab's image runs Debian 12's nginx, whose stream module is a dynamic one
    # (libnginx-mod-stream): the controller's main template has a stream{} block and
    # loads no stream module itself.
    config:
      main-snippets: "load_module modules/ngx_stream_module.so;"
  containerd:
    # Root on this machine lacks CAP_SYS_RESOURCE (`grep CapEff /proc/self/status`: bit 24
    # clear), so no process may lower its oom_score_adj; runc fails a pod sandbox that asks
    # for -998 ("can't get final child's PID from pipe").
    restrict_oom_score_adj: true
  artifacts:
    # BIRD is Debian's bird2 (routers, and workers' calico-bird). Every other artifact is
    # built by the lab from its Go module (`kubesalt-lab build`) and served on the lab
    # bridge; the lab points these entries at its archives and their sums, and
    # containerd:registry_mirrors at its registry, in the pillar copy it serves.
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
