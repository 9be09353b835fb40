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

{{/* Annotations and owner of one object: the common annotations plus the given extra map, and
     a controller reference to .Values.owner. As the Helm operator library does, an object Helm
     keeps on uninstall (helm.sh/resource-policy: keep) names its owner in the
     operator-sdk/primary-resource annotations instead, so the garbage collector keeps it too. */}}
{{- define "dittoserver.metadata" -}}
{{- $all := merge (dict) (.extra | default dict) (.root.Values.annotations | default dict) -}}
{{- $owner := .root.Values.owner | default dict -}}
{{- $keep := eq (get $all "helm.sh/resource-policy" | toString) "keep" -}}
{{- if and $owner.uid $keep -}}
{{- $_ := set $all "operator-sdk/primary-resource" (printf "%s/%s" .root.Release.Namespace $owner.name) -}}
{{- $_ := set $all "operator-sdk/primary-resource-type" (printf "%s.%s" $owner.kind (regexReplaceAll "/?[^/]*$" $owner.apiVersion "")) -}}
{{- end -}}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if and $owner.uid (not $keep) }}
ownerReferences:
  - apiVersion: {{ $owner.apiVersion }}
    kind: {{ $owner.kind }}
    name: {{ $owner.name | quote }}
    uid: {{ $owner.uid | quote }}
    controller: true
    blockOwnerDeletion: true
{{- end }}
{{- end -}}
