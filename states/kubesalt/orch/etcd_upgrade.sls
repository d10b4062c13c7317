{#- Rolling etcd upgrade: set versions:etcd and artifacts:etcd in pillar, then
      salt-run state.orchestrate kubesalt.orch.etcd_upgrade
    One master at a time, in name order: apply kubesalt.etcd (a changed binary restarts
    etcd only while quorum holds without it), then wait until every member is healthy
    before the next master. A failure stops the run there. #}
{%- from "kubesalt/orch/params.jinja" import masters, state_queue with context %}
{%- for master in masters %}

kubesalt-orch-etcd-upgraded-{{ master }}:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ master }}
    - sls: kubesalt.etcd
{%-   if not loop.first %}
    - require:
      - salt: kubesalt-orch-etcd-healthy-after-{{ loop.previtem }}
{%-   endif %}

kubesalt-orch-etcd-healthy-after-{{ master }}:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ masters | join(",") }}
    - tgt_type: list
    - sls: kubesalt.etcd.healthy
    - require:
      - salt: kubesalt-orch-etcd-upgraded-{{ master }}
{%- endfor %}
