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

{{/* `env` entries only EC2 has: left out with cloud=azure, where Azure's own defaults apply. */}}
{{- define "vpccni.ec2OnlyEnv" -}}
WARM_ENI_TARGET WARM_PREFIX_TARGET ENABLE_PREFIX_DELEGATION MAX_ENI DISABLE_LEAKED_ENI_CLEANUP MANAGE_UNTAGGED_ENI ENABLE_SUBNET_DISCOVERY AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG ENI_CONFIG_LABEL_DEF ENI_CONFIG_ANNOTATION_DEF ADDITIONAL_ENI_TAGS AWS_EC2_ENDPOINT AWS_VPC_ENI_MTU
{{- end -}}

{{/* The env entries of `.Values.env` and `.Values.extraEnv`, skipping empty ones (empty = unset); with
cloud=azure, VPCCNI_CLOUD and the Azure identity settings, and not the EC2-only entries of `env`. */}}
{{- define "vpccni.env" -}}
{{- $env := deepCopy .Values.env -}}
{{- $azure := eq (toString .Values.cloud) "azure" -}}
{{- if $azure -}}
{{- range $name := splitList " " (include "vpccni.ec2OnlyEnv" .) }}
{{- $_ := unset $env $name -}}
{{- end -}}
{{- end -}}
{{- $all := merge (dict) .Values.extraEnv $env -}}
{{- if $azure -}}
{{- $all = omit $all "VPCCNI_CLOUD" "VPCCNI_AZURE_IDENTITY_CLIENT_ID" "VPCCNI_AZURE_ARM_ENDPOINT" -}}
{{- $_ := set $all "VPCCNI_CLOUD" "azure" -}}
{{- $_ := set $all "VPCCNI_AZURE_IDENTITY_CLIENT_ID" .Values.azure.identityClientId -}}
{{- $_ := set $all "VPCCNI_AZURE_ARM_ENDPOINT" .Values.azure.armEndpoint -}}
{{- end -}}
{{- range $name := keys $all | sortAlpha }}
{{- $value := toString (get $all $name) }}
{{- if ne $value "" }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end -}}
