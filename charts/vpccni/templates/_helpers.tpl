{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label. */}}
{{- define "vpccni.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vpccni.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "vpccni.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "vpccni.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vpccni.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vpccni.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vpccni.labels" -}}
{{ include "vpccni.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "vpccni.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vpccni.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vpccni.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* True when a ParseBool-style value is true. */}}
{{- define "vpccni.isTrue" -}}
{{- if has (toString .) (list "1" "t" "T" "TRUE" "true" "True") -}}true{{- end -}}
{{- end -}}

{{/* The env entries of `.Values.env` and `.Values.extraEnv`, skipping empty ones (empty = unset). */}}
{{- define "vpccni.env" -}}
{{- $all := merge (dict) .Values.extraEnv .Values.env -}}
{{- range $name := keys $all | sortAlpha }}
{{- $value := toString (get $all $name) }}
{{- if ne $value "" }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end -}}
