{#- The worker role: containerd, kubelet, kube-proxy and calico-node's felix, confd and
    BIRD as systemd units, with the kernel settings kube-proxy needs. #}
{%- set tplroot = tpldir.split("/")[0] %}
include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.node
  - {{ tplroot }}.pki
  - {{ tplroot }}.units
