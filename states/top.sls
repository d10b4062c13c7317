{#- Roles come from pillar (kubesalt:nodes:<minion id>:roles), looked up by the minion id the
    master authenticated; grains are never consulted. kubesalt.assigned_states decides:
    validation first, then one SLS per role; an invalid pillar gets only validation (which
    fails and stops the run); a minion pillar does not know gets only a notice. #}
base:
  '*':
{%- for sls in salt["kubesalt.assigned_states"]() %}
    - {{ sls }}
{%- endfor %}
