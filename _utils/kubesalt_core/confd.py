"""calico-confd's templates for BIRD 2, which kubesalt ships.

calico-confd renders a node's BGP configuration from the Calico datastore (its BGP address
and AS, the BGPPeers, its IPAM blocks, the IP pools). Calico's own templates target the BIRD
1.x fork inside Calico's images; their output does not parse with the BIRD 2 a site can
install (``krt_tunnel``, ``defined()``, no channels). These templates produce BIRD 2's syntax
from the same datastore keys, for what kubesalt configures: the node-to-node mesh off, the
routers as BGPPeers in the cluster AS (route reflectors; global, or per node through a
nodeSelector), no encapsulation.

- ``conf.d/bird.toml``: the template, the keys it watches, ``bird -p`` as its check, and a
  reload through BIRD's control socket (``birdc configure``) instead of runit's ``sv hup``.
- ``templates/bird.cfg.template``: the node announces its own confirmed blocks (static
  blackhole routes, which felix's per-pod routes lie within) and the service addresses
  confd puts under ``/staticroutes`` (``serviceClusterIPs`` of the BGPConfiguration) to
  every peer, and takes the other nodes' blocks, learnt from the routers, into the kernel;
  nothing else goes either way.

No Salt dunders and no I/O here.
"""

BIRD_TOML = """# Managed by kubesalt: calico-confd's template for BIRD 2 (see kubesalt_core.confd).
[template]
src = "bird.cfg.template"
dest = "{config_dir}/bird.cfg"
prefix = "/calico"
keys = [
    "/bgp/v1/host",
    "/bgp/v1/global",
    "/ipam/v2/host//NODENAME/ipv4/block",
    "/v1/ipam/v4/pool",
    "/staticroutes",
]
check_cmd = "{bird} -p -c {{{{.src}}}}"
# No socket yet: BIRD is not up, and reads the file when it starts.
reload_cmd = "test ! -S {socket} || {birdc} -s {socket} configure"
"""

BIRD_TEMPLATE = r"""# Managed by kubesalt: this node's BIRD 2 config, rendered by calico-confd from
# the Calico datastore with kubesalt's templates. Do not edit: confd rewrites it.
{{- $node := getenv "NODENAME"}}
{{- $ip_key := printf "/bgp/v1/host/%s/ip_addr_v4" $node}}
{{- $node_ip := ""}}{{if exists $ip_key}}{{$node_ip = getv $ip_key}}{{end}}
{{- $as_key := printf "/bgp/v1/host/%s/as_num" $node}}
{{- $node_as := ""}}
{{- if exists $as_key}}{{$node_as = getv $as_key}}
{{- else}}{{$node_as = getv "/bgp/v1/global/as_num"}}{{end}}
{{- $blocks := printf "/ipam/v2/host/%s/ipv4/block" $node}}
{{- if eq $node_ip ""}}
# No BGP address for {{$node}} in the datastore yet (calico-node's startup sets it).
router id 0.0.0.1;
protocol device {}
{{- else}}
router id {{$node_ip}};

protocol device {
  scan time 2;
}

# This node's blocks: announced to the peers. Never installed here: felix routes each pod.
protocol static calico_blocks {
  ipv4;
{{- range ls $blocks}}
{{- $cidr := join (split . "-") "/"}}
{{- if not (hasSuffix $cidr "/32")}}
  route {{$cidr}} blackhole;
{{- end}}
{{- end}}
}

# Service addresses this node announces (confd keeps them under /staticroutes from the
# BGPConfiguration: the service cluster IP range when it is advertised). Never installed
# here either: kube-proxy takes the traffic.
protocol static calico_services {
  ipv4;
{{- range ls "/staticroutes"}}
  route {{join (split . "-") "/"}} blackhole;
{{- end}}
}

# What a peer gets: this node's confirmed blocks, nothing beneath or beside them, and the
# service addresses it announces.
function calico_export() {
{{- range ls $blocks}}
{{- $cidr := join (split . "-") "/"}}
{{- $affinity := json (getv (printf "%s/%s" $blocks .))}}
{{- if or (not $affinity.state) (eq $affinity.state "confirmed")}}
  if net = {{$cidr}} then return true;
{{- end}}
{{- end}}
{{- range ls "/staticroutes"}}
  if net = {{join (split . "-") "/"}} && source = RTS_STATIC then return true;
{{- end}}
  return false;
}

# What is taken from a peer, and put in the kernel: routes within the pools.
function calico_pools() {
{{- range ls "/v1/ipam/v4/pool"}}
{{- $pool := json (getv (printf "/v1/ipam/v4/pool/%s" .))}}
  if net ~ {{$pool.cidr}} then return true;
{{- end}}
  return false;
}

protocol kernel {
  ipv4 {
    import none;
    export where source = RTS_BGP && calico_pools();
  };
  scan time 2;
  graceful restart;
  merge paths on;
}

template bgp calico_peer {
  local {{$node_ip}} as {{$node_as}};
  direct;
  graceful restart;
  connect delay time 2;
  connect retry time 5;
  error wait time 5, 30;
}
{{- range $scope := split "global node" " "}}
{{- $key := "/bgp/v1/global/peer_v4/*"}}
{{- if eq $scope "node"}}{{$key = printf "/bgp/v1/host/%s/peer_v4/*" $node}}{{end}}
{{- range gets $key}}
{{- $peer := json .Value}}
{{- if ne $peer.ip $node_ip}}

# BGPPeer {{$peer.ip}} (AS {{$peer.as_num}}, {{$scope}})
protocol bgp {{$scope}}_{{join (split $peer.ip ".") "_"}} from calico_peer {
  neighbor {{$peer.ip}} as {{$peer.as_num}};
  ipv4 {
    gateway direct;
    import where calico_pools();
    export where calico_export();
  };
}
{{- end}}
{{- end}}
{{- end}}
{{- end}}
"""


def files(confd_dir, bird, birdc, socket):
    """``{path: (text, mode)}`` of the templates, under ``confd_dir`` (calico-confd reads
    ``<confd_dir>/conf.d`` and ``<confd_dir>/templates`` and writes ``<confd_dir>/config``)."""
    toml = BIRD_TOML.format(config_dir=f"{confd_dir}/config", bird=bird, birdc=birdc, socket=socket)
    return {
        f"{confd_dir}/conf.d/bird.toml": (toml, 0o644),
        f"{confd_dir}/templates/bird.cfg.template": (BIRD_TEMPLATE, 0o644),
    }
