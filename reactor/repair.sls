{#- The journal beacon saw a unit kubesalt manages fail for good (_beacons/kubesalt_journal.py).
    Send the repair to the minion that reported it, and to it only: list targeting (a glob in
    an id cannot widen it), an id and a unit of plain characters, the tag's minion the same
    as the data's. Everything else is decided on the node: kubesalt_heal.repair acts only on a unit
    that node's roles manage (from pillar) and only when it really is failed there, so a
    forged event naming another minion or an unmanaged unit gets nothing done. #}
{%- set minion = data.get("id") %}
{%- set unit = data.get("unit") %}
{%- set invocation = data.get("invocation_id") %}
{%- set result = data.get("result") %}
{%- if minion is string and minion is match("^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
      and tag.split("/")[2:3] == [minion]
      and unit is string and unit is match("^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}[.]service$") %}

kubesalt-repair-{{ minion }}-{{ unit }}:
  local.kubesalt_heal.repair:
    - tgt:
      - {{ minion | json }}
    - tgt_type: list
    - args:
      - unit: {{ unit | json }}
      - invocation_id: {{ (invocation if invocation is string and invocation is match("^[0-9a-f]{32}$") else none) | json }}
      - result: {{ (result if result is string and result is match("^[a-z-]{1,40}$") else none) | json }}
{%- endif %}
