{#- The systemd units of this node's roles (all but etcd, which has its own formula): their
    config files, the unit files, then each unit enabled and running, restarted when its
    config, unit or binary changes (and only then), or when a certificate it reads was
    re-issued after it started. A unit whose artifact pillar does not give is written and
    left stopped; a unit the site turned off is stopped and removed. A config file its component can check (HAProxy's, the router's BIRD's,
    containerd's config.toml) replaces the running one only once the component's own check
    accepts it. What is written is rendered by kubesalt_unit from
    _utils/kubesalt_core/unit.py. A step of the upgrade orchestration names the units it
    may touch (kubesalt_upgrade.scope); only those are managed then. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set units = salt["kubesalt_unit.rendered"]() %}
{%- set scope = salt["kubesalt_upgrade.scope"]() %}
{%- if scope is not none %}
{%-   set units = units | selectattr("name", "in", scope) | list %}
{%- endif %}
{%- set files = {} %}
{%- for unit in units %}
{%- for path, file in unit.files.items() %}
{%- do files.setdefault(path, {"file": file, "units": []})["units"].append(unit) %}
{%- endfor %}
{%- endfor %}

include:
  - {{ tplroot }}.validate
{%- if units | selectattr("uses_pki") | list %}
  - {{ tplroot }}.pki
{%- endif %}
  - {{ tplroot }}.artifacts
  - .kernel

{%- for path, entry in files | dictsort %}

kubesalt-config-{{ path }}-managed:
  file.managed:
    - name: {{ path }}
    - contents: {{ entry.file.text | json }}
    - user: root
    - group: root
    - mode: "{{ entry.file.mode }}"
    - makedirs: True
{%- set checked = [] %}
{%- for unit in entry.units if path in unit.checks %}{% do checked.append(unit) %}{% endfor %}
{%- if checked and checked[0].available %}
    # The check reads the certificates the config names, with the binary installed.
    - check_cmd: {{ checked[0].checks[path] | json }}
{%- endif %}
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- if checked and checked[0].available %}
{%- if checked[0].uses_pki %}
      - kubesalt_pki: kubesalt-pki-certificates-present
{%- endif %}
{%- for binary in checked[0].binaries %}
      - kubesalt_artifact: kubesalt-artifact-{{ binary }}-installed
{%- endfor %}
{%- endif %}
{%- endfor %}

{%- for directory in units | map(attribute="directories") | sum(start=[]) | unique %}

kubesalt-unit-directory-{{ directory }}-managed:
  file.directory:
    - name: {{ directory }}
    - user: root
    - group: root
    - mode: "0750"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- endfor %}

{%- for unit in units %}

kubesalt-unit-{{ unit.name }}-managed:
  file.managed:
    - name: {{ unit.unit_path }}
    - contents: {{ unit.unit_text | json }}
    - user: root
    - group: root
    - mode: "0600"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- endfor %}

{%- if units %}

kubesalt-units-daemon-reloaded:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
{%- for unit in units %}
      - file: kubesalt-unit-{{ unit.name }}-managed
{%- endfor %}
{%- endif %}

{%- for unit in units %}
{%- if unit.available %}

kubesalt-unit-{{ unit.name }}-running:
  service.running:
    - name: {{ unit.unit }}
    - enable: True
{%- if unit.reload %}
    - reload: True
{%- endif %}
    - require:
      - module: kubesalt-units-daemon-reloaded
{%- if unit.uses_pki %}
      - kubesalt_pki: kubesalt-pki-certificates-present
{%- endif %}
{%- if unit.reads_encryption_config %}
      - kubesalt_encryption: kubesalt-encryption-config-current
{%- endif %}
{%- for binary in unit.binaries %}
      - kubesalt_artifact: kubesalt-artifact-{{ binary }}-installed
{%- endfor %}
{%- for directory in unit.directories %}
      - file: kubesalt-unit-directory-{{ directory }}-managed
{%- endfor %}
    - watch:
      - file: kubesalt-unit-{{ unit.name }}-managed
{%- for path in unit.files %}
      - file: kubesalt-config-{{ path }}-managed
{%- endfor %}
{%- for binary in unit.binaries %}
      - kubesalt_artifact: kubesalt-artifact-{{ binary }}-installed
{%- endfor %}
{%- if unit.credentials %}

{#- A certificate re-issued while the unit ran (renewal) restarts it: it reads them at start. #}
kubesalt-unit-{{ unit.name }}-credentials-current:
  kubesalt_unit.credentials_current:
    - name: {{ unit.name }}
    - require:
      - service: kubesalt-unit-{{ unit.name }}-running
{%- endif %}
{%- else %}

kubesalt-unit-{{ unit.name }}-not-started:
  test.succeed_without_changes:
    - name: >-
        {{ unit.unit }} written and not started: artifact {{ unit.artifact }} not available
        ({{ unit.unavailable_reason }})
    - require:
      - file: kubesalt-unit-{{ unit.name }}-managed
{%- endif %}
{%- endfor %}

{%- for unit in salt["kubesalt_unit.unwanted"]() if scope is none and salt["file.file_exists"](unit.unit_path) %}

kubesalt-unit-{{ unit.name }}-turned-off:
  service.dead:
    - name: {{ unit.unit }}
    - enable: False

kubesalt-unit-{{ unit.name }}-removed:
  file.absent:
    - name: {{ unit.unit_path }}
    - require:
      - service: kubesalt-unit-{{ unit.name }}-turned-off
{%- endfor %}
