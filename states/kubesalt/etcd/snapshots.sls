{#- etcd snapshots on this master: the directory they are kept in, and a job of this
    minion's own schedule that runs kubesalt_etcd_snapshot.save every
    etcd:snapshots:interval_minutes (0: the job is removed). Each run verifies its
    snapshot, records its sha256 and keeps the newest etcd:snapshots:keep. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import kubesalt with context %}
{%- set snapshots = kubesalt.etcd.snapshots %}

include:
  - {{ tplroot }}.validate

kubesalt-etcd-snapshot-dir-managed:
  file.directory:
    - name: {{ kubesalt.paths.etcd_snapshot_dir }}
    - user: root
    - group: root
    - mode: "0700"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated

kubesalt-etcd-snapshot-scheduled:
  kubesalt_etcd_snapshot.scheduled:
    - name: kubesalt-etcd-snapshot
    - minutes: {{ snapshots.interval_minutes }}
    - require:
      - file: kubesalt-etcd-snapshot-dir-managed
