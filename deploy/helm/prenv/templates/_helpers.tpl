{{/* The release's resources are named after it; "prenv" alone when the release is. */}}
{{- define "prenv.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "prenv.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* prenv serve's pods, not the CronJobs'. */}}
{{- define "prenv.serveLabels" -}}
{{ include "prenv.selectorLabels" . }}
app.kubernetes.io/component: serve
{{- end -}}

{{- define "prenv.labels" -}}
{{ include "prenv.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "prenv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "prenv.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "prenv.goldenServiceAccountName" -}}
{{- $sa := .Values.golden.cronJob.serviceAccount -}}
{{- if $sa.create -}}
{{- $sa.name | default (printf "%s-golden" (include "prenv.fullname" .)) -}}
{{- else -}}
{{- required "golden.cronJob.serviceAccount.name: the golden build reads production; name the service account of its role, or set create" $sa.name -}}
{{- end -}}
{{- end -}}

{{- define "prenv.image" -}}
{{- $repo := required "image.repository: where make image pushed prenv's image (IMAGE_REPO)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "prenv.configMapName" -}}
{{- .Values.existingConfigMap | default (include "prenv.fullname" .) -}}
{{- end -}}

{{/*
The environment every prenv container gets: its home, the secrets, the
operator's own.
*/}}
{{- define "prenv.env" -}}
- name: PRENV_HOME
  value: /var/lib/prenv
# Replicas elect their leader on a Lease in this namespace.
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
{{- with .Values.secrets.webhook }}{{ if .name }}
- name: PRENV_GITHUB_WEBHOOK_SECRET
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- with .Values.secrets.githubToken }}{{ if .name }}
- name: PRENV_GITHUB_TOKEN
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- if .Values.secrets.githubAppKey.name }}
- name: PRENV_GITHUB_APP_KEY_FILE
  value: /etc/prenv/github/private-key.pem
{{- end }}
{{- with .Values.secrets.store }}{{ if .name }}
- name: PRENV_STORE
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- with .Values.secrets.password }}{{ if .name }}
- name: PRENV_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "prenv.volumeMounts" -}}
- {name: config, mountPath: /etc/prenv/prenv.yaml, subPath: prenv.yaml, readOnly: true}
- {name: home, mountPath: /var/lib/prenv}
- {name: tmp, mountPath: /tmp}
{{- if .Values.secrets.githubAppKey.name }}
- {name: github-app-key, mountPath: /etc/prenv/github, readOnly: true}
{{- end }}
{{- end -}}

{{- define "prenv.volumes" -}}
- name: config
  configMap: {name: {{ include "prenv.configMapName" . | quote }}}
- name: home
  emptyDir: {sizeLimit: {{ .Values.home.sizeLimit }}}
- name: tmp
  emptyDir: {sizeLimit: 256Mi}
{{- with .Values.secrets.githubAppKey }}{{ if .name }}
- name: github-app-key
  secret:
    secretName: {{ .name | quote }}
    defaultMode: 0400
    items: [{key: {{ .key | quote }}, path: private-key.pem}]
{{- end }}{{ end }}
{{- end -}}
