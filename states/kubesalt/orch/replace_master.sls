{#- Replace a dead master:
      salt-run state.orchestrate kubesalt.orch.replace_master pillar='{"dead": "master-3", "target": "master-4"}'
    The dead member is removed through a live master (refused if quorum would not hold
    without it), then `target` (a master in pillar; the same id for a rebuilt host) joins as
    a learner and is promoted. etcd must be healthy at the end; then every worker's
    apiserver proxy sends connections to the target too. #}
{%- from "kubesalt/orch/params.jinja" import masters, proxied, target, dead, others, state_queue with context %}
{%- if not dead or target not in masters or not others %}

kubesalt-orch-refused:
  test.fail_without_changes:
    - name: >-
        pillar keys dead and target: expected the dead member's name and a master of
        kubesalt:nodes to take its place, with another live master (got dead={{ dead or
        "nothing" }}, target={{ target or "nothing" }}; masters: {{ masters | join(", ") }})
{%- else %}

kubesalt-orch-dead-member-removed:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ others[0] }}
    - sls: kubesalt.etcd.member_removed
    - pillar:
        etcd_member: {{ dead }}

kubesalt-orch-replacement-applied:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ target }}
    - highstate: True
    - require:
      - salt: kubesalt-orch-dead-member-removed

kubesalt-orch-etcd-healthy-after:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ (others + [target]) | join(",") }}
    - tgt_type: list
    - sls: kubesalt.etcd.healthy
    - require:
      - salt: kubesalt-orch-replacement-applied
{%- if proxied %}

{#- Every worker's apiserver proxy gets the new list of masters (a reload); a dead master
    that pillar still names is drained until pillar loses it. #}
kubesalt-orch-apiserver-proxies-updated:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ proxied | join(",") }}
    - tgt_type: list
    - sls: kubesalt.units
{%- if dead != target and dead in masters %}
    - pillar:
        kubesalt:
          apiserver_proxy:
            drain: {{ ([dead] + salt["pillar.get"]("kubesalt:apiserver_proxy:drain", [])) | json }}
{%- endif %}
    - require:
      - salt: kubesalt-orch-etcd-healthy-after
{%- endif %}
{%- endif %}
