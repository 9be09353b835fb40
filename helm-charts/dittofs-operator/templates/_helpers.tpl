{{/* Object names: <release>-dittofs-operator-<name> (the prefix cut to 28 characters, so every
     Service name fits the 63 of a DNS label), or dittofs-operator-<name> when the release is named after the chart
     (helm install dittofs-operator ... gives the names kubectl apply -k config/default gives). */}}
{{- define "op.prefix" -}}
{{- if eq .Release.Name .Chart.Name -}}{{ .Chart.Name }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 28 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "op.name" -}}{{ include "op.prefix" .root }}-{{ .name }}{{- end -}}

{{- define "op.labels" -}}
app.kubernetes.io/name: dittofs-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The selector: fixed labels plus the release, so two releases never select each other. */}}
{{- define "op.selector" -}}
app.kubernetes.io/name: dittofs-operator
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end -}}

{{- define "op.serviceAccount" -}}{{ include "op.name" (dict "root" . "name" "controller-manager") }}{{- end -}}

{{/* rules of a generated Role file (files/, copied from config/rbac by hack/chart.sh) */}}
{{- define "op.rules" -}}
{{- $doc := .root.Files.Get .file | fromYaml -}}
{{- if not $doc.rules -}}{{- fail (printf "%s has no rules" .file) -}}{{- end -}}
{{ toYaml $doc.rules }}
{{- end -}}
