{#- etcd on a master: the binary, its config and unit, the data dir, then membership.
    Membership (found, join as a learner, promote) is decided live by kubesalt_etcd.member_present;
    see the kubesalt_etcd module docstrings. The certificates come from kubesalt.pki. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import kubesalt with context %}
{%- set etcd = salt["kubesalt_etcd.settings"]() %}
{#- The unit and its environment file from etcd's component record (kubesalt_core.unit). #}
{%- set unit = salt["kubesalt_unit.render"]("etcd") %}
{%- set env = unit.files[etcd.env_file] %}
{%- set artifact = kubesalt.artifacts.get("etcd") %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.pki

{%- if not artifact %}

kubesalt-etcd-installed:
  test.fail_without_changes:
    - name: >-
        pillar key artifacts:etcd is not set: give a release archive (source: url, url,
        sha256), a distribution package (source: package, package) or the directory on the
        host that holds etcd and etcdctl (source: path, path)
{%- elif artifact.source == "package" %}

kubesalt-etcd-installed:
  pkg.installed:
    - name: {{ artifact.package }}
{%- elif artifact.source == "url" %}

# Downloaded, checked against artifacts:etcd:sha256, then renamed into place (kubesalt_artifact).
kubesalt-etcd-installed:
  kubesalt_artifact.installed:
    - name: etcd

kubesalt-etcd-etcdctl-installed:
  kubesalt_artifact.installed:
    - name: etcdctl

kubesalt-etcd-etcdutl-installed:
  kubesalt_artifact.installed:
    - name: etcdutl
{%- else %}

kubesalt-etcd-installed:
  file.exists:
    - name: {{ etcd.binary }}
{%- endif %}

{#- etcd runs as its own system user, which owns its data directory; it reads its own
    copies of its certificates and keys (the originals stay root's under the PKI directory)
    and reads them again for every new connection, so a renewal needs no restart. #}
kubesalt-etcd-data-dir-managed:
  kubesalt_etcd.owned:
    - name: {{ etcd.data_dir }}
    - require:
      - kubesalt: kubesalt-pillar-validated
      - kubesalt_pki: kubesalt-pki-certificates-present

kubesalt-etcd-config-managed:
  file.managed:
    - name: {{ etcd.env_file }}
    - contents: {{ env.text | json }}
    - user: root
    - group: root
    - mode: "{{ env.mode }}"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated
      # A failed install (a wrong checksum) leaves the running etcd's unit as it was.
      - kubesalt-etcd-installed

kubesalt-etcd-unit-managed:
  file.managed:
    - name: {{ unit.unit_path }}
    - contents: {{ unit.unit_text | json }}
    - user: root
    - group: root
    - mode: "0600"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated
      # A failed install (a wrong checksum) leaves the running etcd's unit as it was.
      - kubesalt-etcd-installed

kubesalt-etcd-daemon-reloaded:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: kubesalt-etcd-unit-managed

kubesalt-etcd-member-present:
  kubesalt_etcd.member_present:
    - name: {{ etcd.name }}
    - peer_urls: {{ etcd.peer_urls | json }}
    - client_urls: {{ etcd.client_urls | json }}
    - data_dir: {{ etcd.data_dir }}
    - env_file: {{ etcd.cluster_env_file }}
    - founders: {{ etcd.founders | json }}
    - token: {{ etcd.token }}
    - require:
      - kubesalt-etcd-installed
      - kubesalt_etcd: kubesalt-etcd-data-dir-managed
      - file: kubesalt-etcd-config-managed
      - module: kubesalt-etcd-daemon-reloaded
      - kubesalt_pki: kubesalt-pki-certificates-present
    # A changed binary, config or unit restarts etcd, one master at a time and only while
    # quorum holds without it (kubesalt_etcd.restart_safely); not when this run just started it.
    - watch:
      - kubesalt-etcd-installed
      - file: kubesalt-etcd-config-managed
      - file: kubesalt-etcd-unit-managed

{#- A restart a run could not make (quorum did not allow it then) is made by a later one. #}
kubesalt-etcd-running-current:
  kubesalt_etcd.running_current:
    - name: {{ etcd.name }}
    - files: {{ [unit.unit_path, etcd.env_file] | json }}
    - require:
      - kubesalt_etcd: kubesalt-etcd-member-present

kubesalt-etcd-enabled:
  service.enabled:
    - name: etcd
    - require:
      - kubesalt_etcd: kubesalt-etcd-member-present
