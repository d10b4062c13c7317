{#- Remove another host's etcd member by name or id, from this (live) master:
      salt master-1 state.apply kubesalt.etcd.member_removed pillar='{"etcd_member": "master-3"}'
    Refused before any change when quorum would not hold without it. Used by
    kubesalt/orch/replace_master for a member whose host is dead. #}
{%- set member = salt["pillar.get"]("etcd_member", "") %}
{%- if not member %}

kubesalt-etcd-member-removed:
  test.fail_without_changes:
    - name: "pillar key etcd_member: expected the name or id of the member to remove"
{%- else %}

kubesalt-etcd-member-removed:
  kubesalt_etcd.member_absent:
    - name: {{ member | string | json }}
{%- endif %}
