{#- Every binary this node's units need (the artifact catalogue, kubesalt_artifact.needed), from pillar
    `artifacts`. etcd's binaries are installed by kubesalt.etcd, which orders them against
    etcd's quorum-safe restart. A url source is downloaded, checked and renamed into place;
    a package is installed; a path is checked. #}
{%- set tplroot = tpldir.split("/")[0] %}

include:
  - {{ tplroot }}.validate

{%- for binary in salt["kubesalt_artifact.needed"]() %}
{%- if binary not in ("etcd", "etcdctl") %}

kubesalt-artifact-{{ binary }}-installed:
  kubesalt_artifact.installed:
    - name: {{ binary }}
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- endif %}
{%- endfor %}
