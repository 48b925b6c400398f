#!/usr/bin/env bash
# Checks the Helm chart offline, with the tools deploy/local/tools.sh installs: for the
# default values and for each deploy/helm/vitals/ci/*-values.yaml, and for each pinned
# Kubernetes version,
#   helm lint --strict (values.schema.json included), and
#   helm template | kubeconform -strict: every manifest, hooks included, against the
#   Kubernetes API's schemas, ServiceMonitor's and PrometheusRule's; a kind without a schema fails.
# Exit status: 0 all good, 1 a check failed, 3 the tools are missing.
set -euo pipefail
# shellcheck source=../local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

CHART=$REPO_ROOT/deploy/helm/vitals
RELEASE=vitals
NAMESPACE=vitals

if ! "$REPO_ROOT/deploy/local/tools.sh" check; then
  exit 3
fi
eval "$("$REPO_ROOT/deploy/local/tools.sh" env)"
SCHEMA_LOCATION="$KUBERNETES_SCHEMAS/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"

# Helm's own folders (repositories, plugins, cache): none is needed, none of the
# user's is read or written.
HELM_HOME=$(mktemp -d)
trap 'rm -rf "$HELM_HOME"' EXIT
export HELM_CACHE_HOME=$HELM_HOME/cache HELM_CONFIG_HOME=$HELM_HOME/config HELM_DATA_HOME=$HELM_HOME/data

value_sets=("")
for file in "$CHART"/ci/*-values.yaml; do
  [ -e "$file" ] && value_sets+=("$file")
done

started=$SECONDS
failed=()
for values in "${value_sets[@]}"; do
  name=${values:+$(rel "$values")}
  name=${name:-default values}
  values_args=()
  [ -n "$values" ] && values_args=(--values "$values")
  for version in $KUBERNETES_VERSIONS; do
    say "== $name, Kubernetes $version"
    if ! "$HELM" lint --strict --quiet --kube-version "$version" "${values_args[@]}" "$CHART"; then
      failed+=("helm lint: $name, Kubernetes $version")
      continue
    fi
    # The ServiceMonitor and PrometheusRule are made where the cluster serves their
    # API: say this one does.
    if ! manifests=$("$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" \
      --kube-version "$version" --api-versions monitoring.coreos.com/v1/ServiceMonitor \
      --api-versions monitoring.coreos.com/v1/PrometheusRule \
      "${values_args[@]}"); then
      failed+=("helm template: $name, Kubernetes $version")
      continue
    fi
    if ! "$KUBECONFORM" -strict -summary -kubernetes-version "$version" \
      -schema-location "$SCHEMA_LOCATION" <<<"$manifests"; then
      failed+=("kubeconform: $name, Kubernetes $version")
    fi
  done
done

if [ ${#failed[@]} -gt 0 ]; then
  warn "FAILED ($((SECONDS - started)) s):"
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
say "The chart passed helm lint and kubeconform for ${#value_sets[@]} value sets and Kubernetes $KUBERNETES_VERSIONS ($((SECONDS - started)) s)"
