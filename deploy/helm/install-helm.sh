#!/usr/bin/env bash
# Install helm for the chart checks (`make deploy-tools`; CI). No helm package is served
# by the registries these machines reach, but helm is a Go module: it is built with
# `go install` from the Go module proxy, pinned, into $(go env GOPATH)/bin. The first build
# takes a few minutes (Go's module and build caches make later ones instant).
#   deploy/helm/install-helm.sh           install if missing or of another version
#   deploy/helm/install-helm.sh --print   print the path of the installed helm
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if [ ! -x "$GO" ] && ! command -v "$GO" >/dev/null 2>&1; then
    echo "install-helm.sh: Go is needed to build helm (go install helm.sh/helm/v3/cmd/helm)" >&2
    exit 1
fi
gobin="$("$GO" env GOPATH)/bin"
helm="$gobin/helm"
stamp="$gobin/.helm-version"
if [ "${1:-}" = "--print" ]; then
    echo "$helm"
    exit 0
fi
if [ -x "$helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$HELM_VERSION" ]; then
    echo "helm $HELM_VERSION: $helm"
    exit 0
fi
echo "building helm $HELM_VERSION with go install (first time: a few minutes)..."
started=$(date +%s)
GOFLAGS="${GOFLAGS:--buildvcs=false}" "$GO" install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$HELM_VERSION" > "$stamp"
echo "helm $("$helm" version --short) built in $(( $(date +%s) - started ))s: $helm"
