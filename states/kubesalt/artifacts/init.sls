{#- Every binary this node's roles need (the artifact catalogue, k8s_artifact), from pillar
    `artifacts`. etcd's binaries are installed by kubesalt.etcd, which orders them against
    etcd's quorum-safe restart. A url source is downloaded, checked and renamed into place;
    a package is installed; a path is checked; `source: unavailable` installs nothing. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import node with context %}

include:
  - {{ tplroot }}.validate

{%- for binary in salt["k8s_artifact.catalogue"]() %}
{%- if binary.name not in ("etcd", "etcdctl") and (binary.roles | select("in", node.roles) | list) %}

kubesalt-artifact-{{ binary.name }}-installed:
  k8s_artifact.installed:
    - name: {{ binary.name }}
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- endif %}
{%- endfor %}
