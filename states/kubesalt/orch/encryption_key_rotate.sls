{#- Rotate the key Secrets are encrypted with:
      salt-run state.orchestrate kubesalt.orch.encryption_key_rotate
    (pillar='{"key": "<base64 of 32 bytes>"}' brings your own key; default: the CA host makes
    one). The CA host stages a new key, which every apiserver then reads with; the new key
    is promoted to write, on every apiserver; every Secret is rewritten with it; the old key
    is retired (refused while etcd still holds a Secret written with it) and leaves every
    apiserver. Each step waits until every apiserver runs with the new file (they reload it
    by themselves, within a minute, without a restart). A failure stops the run where it
    is; run it again to finish (a staged key is kept). #}
{%- from "kubesalt/orch/params.jinja" import masters, state_queue with context %}
{%- set ca_host = salt["pillar.get"]("kubesalt:pki:ca_host") or (masters | first) %}
{%- set key = salt["pillar.get"]("key", None) %}
{%- if not masters %}

kubesalt-orch-refused:
  test.fail_without_changes:
    - name: pillar kubesalt:nodes has no master
{%- else %}
{%- for step, function in (
      ("staged", "kubesalt_ca.encryption_key_stage"),
      ("promoted", "kubesalt_ca.encryption_key_promote"),
      ("retired", "kubesalt_ca.encryption_key_retire")) %}
{%-   if step == "retired" %}

{#- Every Secret written again, now with the promoted key. #}
kubesalt-orch-encryption-secrets-rewritten:
  salt.function:
    - name: kubesalt_encryption.rewrite_secrets
    - tgt: {{ ca_host }}
    - require:
      - salt: kubesalt-orch-encryption-promoted-loaded
{%-   endif %}

kubesalt-orch-encryption-key-{{ step }}:
  salt.function:
    - name: {{ function }}
    - tgt: {{ ca_host }}
{%-   if step == "staged" and key is not none %}
    - kwarg:
        key: {{ key | json }}
{%-   endif %}
{%-   if step == "promoted" %}
    - require:
      - salt: kubesalt-orch-encryption-staged-loaded
{%-   elif step == "retired" %}
    - require:
      - salt: kubesalt-orch-encryption-secrets-rewritten
{%-   endif %}

kubesalt-orch-encryption-{{ step }}-written:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ masters | join(",") }}
    - tgt_type: list
    - sls: kubesalt.pki
    - require:
      - salt: kubesalt-orch-encryption-key-{{ step }}

kubesalt-orch-encryption-{{ step }}-loaded:
  salt.function:
    - name: kubesalt_encryption.loaded
    - tgt: {{ masters | join(",") }}
    - tgt_type: list
    - require:
      - salt: kubesalt-orch-encryption-{{ step }}-written
{%- endfor %}
{%- endif %}
