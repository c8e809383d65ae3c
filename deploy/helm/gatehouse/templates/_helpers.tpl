{{/* The base name of every object: the release name, with "-gatehouse" unless it says so. */}}
{{- define "gatehouse.fullname" -}}
{{- if contains "gatehouse" .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-gatehouse" .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "gatehouse.labels" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
Selector labels of one component ("server" or "outpost"). The component label is what keeps
the outpost Service off the server's pods and the reverse (SPEC T1); a test renders the chart
and checks it.
*/}}
{{- define "gatehouse.selector" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gatehouse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Hardened container settings: non-root, read-only root filesystem, no capabilities. */}}
{{- define "gatehouse.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "gatehouse.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Probes on the health endpoints of the port named http. */}}
{{- define "gatehouse.probes" -}}
startupProbe:
  httpGet: {path: /-/health/live/, port: http}
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: {path: /-/health/live/, port: http}
  periodSeconds: 10
readinessProbe:
  httpGet: {path: /-/health/ready/, port: http}
  periodSeconds: 5
{{- end -}}
