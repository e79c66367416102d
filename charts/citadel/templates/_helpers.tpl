{{/* Labels of every object; call with (list $ "component"). */}}
{{- define "citadel.labels" -}}
{{- $ := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $.Chart.Name $.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: citadel
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
app.kubernetes.io/part-of: citadel
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Selector labels of a component's pods; call with (list $ "component"). */}}
{{- define "citadel.selectorLabels" -}}
app.kubernetes.io/name: citadel
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "citadel.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The downward-API variables every process reads. */}}
{{- define "citadel.podEnv" -}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: HOME
  value: /tmp
{{- end }}

{{/* The mirror's Service, and the address the agents pull from. */}}
{{- define "citadel.mirrorHost" -}}
citadel-mirror.{{ .Release.Namespace }}.svc:{{ .Values.mirror.port }}
{{- end }}

{{/* The agent's data directory. */}}
{{- define "citadel.agentDataDir" -}}
{{ .Values.agent.dataDir | default (printf "%s/.citadel" (trimSuffix "/" .Values.models.root)) }}
{{- end }}
