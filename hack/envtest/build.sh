#!/usr/bin/env bash
# Builds the kube-apiserver and etcd binaries that envtest starts, from the Go
# module proxy, into bin/k8s/ (the usual envtest download site is not reachable
# from where this project is built and tested).
#
# Each binary is built in a throwaway module under a temp dir:
#   kube-apiserver: requires k8s.io/kubernetes and replaces every staging module
#                   (which k8s.io/kubernetes points at ./staging/...) by the same
#                   module at the matching v0.Y.Z tag;
#   etcd:           requires go.etcd.io/etcd/server/v3 and pins its sibling modules
#                   to the same tag.
# Idempotent: a binary that already exists is not rebuilt. The Go build cache
# makes a rebuild after `rm -rf bin/k8s` fast.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
# v1.Y.Z -> v0.Y.Z: the staging modules' tag for that Kubernetes release.
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${ENVTEST_ASSETS_DIR:-$ROOT/bin/k8s}"
GO="${GO:-go}"
mkdir -p "$OUT"

# -trimpath and no VCS stamping keep the build cache keys independent of the
# temp dir, so a second run is a cache hit.
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export CGO_ENABLED=0
export GOWORK=off
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# build_kube NAME: builds k8s.io/kubernetes/cmd/NAME (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) in a throwaway module of
# its own; the Go module and build caches make the later ones faster.
build_kube() {
	local name=$1
	if [[ -x "$OUT/$name" ]]; then
		echo "$name: $OUT/$name exists, skipping"
		return
	fi
	echo "$name: building k8s.io/kubernetes $KUBE_VERSION (staging $STAGING_VERSION)"
	local dir="$work/kube-$name"
	mkdir -p "$dir"
	(
		cd "$dir"
		"$GO" mod init envtest.local/kube >/dev/null 2>&1
		# The staging modules are exactly those k8s.io/kubernetes replaces with ./staging/...
		local gomod
		gomod="$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
		if [[ -z "$gomod" || ! -f "$gomod" ]]; then
			echo "kube-apiserver: cannot find go.mod of k8s.io/kubernetes@$KUBE_VERSION" >&2
			exit 1
		fi
		local mods
		mods="$(grep -oE '^[[:space:]]*k8s\.io/[A-Za-z0-9._/-]+[[:space:]]+=>[[:space:]]+\./staging/' "$gomod" | awk '{print $1}' | sort -u)"
		if [[ -z "$mods" ]]; then
			echo "kube-apiserver: no staging replaces found in $gomod" >&2
			exit 1
		fi
		local args=(-require "k8s.io/kubernetes@$KUBE_VERSION")
		for m in $mods; do
			args+=(-replace "$m=$m@$STAGING_VERSION")
		done
		"$GO" mod edit "${args[@]}"
		"$GO" mod tidy >/dev/null 2>&1 || true
		"$GO" get "k8s.io/kubernetes/cmd/$name@$KUBE_VERSION"
		# Stamp the version the release build would (it is otherwise
		# v0.0.0-master), so that /version and --version tell the truth.
		local v="k8s.io/component-base/version"
		local minor="${KUBE_VERSION#v1.}"
		minor="${minor%%.*}"
		"$GO" build -ldflags "-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
			-o "$OUT/$name.tmp" "k8s.io/kubernetes/cmd/$name"
	)
	mv "$OUT/$name.tmp" "$OUT/$name"
	echo "$name: built $OUT/$name"
}

build_etcd() {
	if [[ -x "$OUT/etcd" ]]; then
		echo "etcd: $OUT/etcd exists, skipping"
		return
	fi
	echo "etcd: building go.etcd.io/etcd/server/v3 $ETCD_VERSION"
	local dir="$work/etcd"
	mkdir -p "$dir"
	(
		cd "$dir"
		"$GO" mod init envtest.local/etcd >/dev/null 2>&1
		local args=(-require "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
		for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
			args+=(-replace "go.etcd.io/etcd/$m=go.etcd.io/etcd/$m@$ETCD_VERSION")
		done
		"$GO" mod edit "${args[@]}"
		"$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		"$GO" build -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
	)
	mv "$OUT/etcd.tmp" "$OUT/etcd"
	echo "etcd: built $OUT/etcd"
}

# With arguments, only those binaries (make cluster-assets builds the
# scheduler and kubectl for the cluster tests this way, so that make test does
# not wait for binaries it does not use).
if [[ $# -gt 0 ]]; then
	for name in "$@"; do
		case "$name" in
		etcd) build_etcd ;;
		kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) build_kube "$name" ;;
		*) echo "build.sh: unknown binary $name" >&2; exit 2 ;;
		esac
	done
	exit 0
fi

build_etcd
build_kube kube-apiserver
# The real CronJob, Job and garbage-collector controllers, for the tests of
# what the operator's objects do once created (see controller/kcm_test.go).
build_kube kube-controller-manager
# Print the versions without a pipe: under pipefail, `etcd --version | head -1`
# fails with SIGPIPE (exit 141) whenever head exits before etcd has written all.
etcd_version="$("$OUT/etcd" --version)"
echo "${etcd_version%%$'\n'*}"
"$OUT/kube-apiserver" --version
"$OUT/kube-controller-manager" --version
