{{/* Labels on every object. Helm itself adds app.kubernetes.io/managed-by: Helm (and overwrites
     any other value), so the operator selects its objects by app.kubernetes.io/part-of. */}}
{{- define "dittoserver.labels" -}}
app.kubernetes.io/name: dittofs-server
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: dittofs
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod selector: the same labels the StatefulSet's pods carry. */}}
{{- define "dittoserver.selectorLabels" -}}
app.kubernetes.io/name: dittofs-server
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Annotations of one object: common annotations plus the given extra map. */}}
{{- define "dittoserver.annotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.root.Values.annotations | default dict) -}}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}
