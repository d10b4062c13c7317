{#- The master role: etcd (and its scheduled snapshots), then the control plane and Typha as systemd units; the first
    master also applies the cluster objects. #}
{%- set tplroot = tpldir.split("/")[0] %}
include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.node
  - {{ tplroot }}.pki
  - {{ tplroot }}.etcd
  - {{ tplroot }}.etcd.snapshots
  - {{ tplroot }}.units
{%- if salt["kubesalt_manifest.applies_here"]() %}
  - {{ tplroot }}.cluster_objects
{%- endif %}
