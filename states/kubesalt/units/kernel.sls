{#- What kube-proxy's IPVS mode and pod routing need from the kernel on a worker: the
    modules-load.d and sysctl.d files always; loading the modules and applying the sysctls
    only where kube-proxy really runs (its artifact is available), since a host that cannot
    run it (a container in the lab) may not load kernel modules at all. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import kubesalt, node with context %}
{%- set kernel = salt["k8s_unit.kernel"]() %}

include:
  - {{ tplroot }}.validate

{%- if kernel %}
{%- for path, file in kernel.files | dictsort %}

kubesalt-kernel-{{ path }}-managed:
  file.managed:
    - name: {{ path }}
    - contents: {{ file.text | json }}
    - mode: "{{ file.mode }}"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- endfor %}
{%- if kernel.apply %}
{%- for module in kernel.modules %}

kubesalt-kernel-module-{{ module }}-loaded:
  kmod.present:
    - name: {{ module }}
{%- endfor %}

kubesalt-kernel-sysctls-applied:
  cmd.run:
    - name: sysctl -p {{ kernel.sysctl_file }}
    - onchanges:
      - file: kubesalt-kernel-{{ kernel.sysctl_file }}-managed
    - require:
{%- for module in kernel.modules %}
      - kmod: kubesalt-kernel-module-{{ module }}-loaded
{%- endfor %}
{%- endif %}
{%- endif %}
