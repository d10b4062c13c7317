{#- Every binary this node's units need (the artifact catalogue, kubesalt_artifact.needed), from pillar
    `artifacts`. etcd's binaries are installed by kubesalt.etcd, which orders them against
    etcd's quorum-safe restart. A url source is downloaded, checked and renamed into place;
    a package is installed; a path is checked. A step of the upgrade orchestration installs
    only the binaries of the units it names (kubesalt_upgrade.scope). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set binaries = salt["kubesalt_artifact.needed"]() %}
{%- set scope = salt["kubesalt_upgrade.scope"]() %}
{%- if scope is not none %}
{%-   set allowed = salt["kubesalt_unit.rendered"]() | selectattr("name", "in", scope)
                    | map(attribute="binaries") | sum(start=[]) %}
{%-   set binaries = binaries | select("in", allowed) | list %}
{%- endif %}

include:
  - {{ tplroot }}.validate

{%- for binary in binaries %}
{%- if binary not in ("etcd", "etcdctl", "etcdutl") %}

kubesalt-artifact-{{ binary }}-installed:
  kubesalt_artifact.installed:
    - name: {{ binary }}
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- endif %}
{%- endfor %}
