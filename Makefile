# dbarchive — run `make` or `make help` for the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
GO ?= go
GOTEST_FLAGS ?= -count=1 -timeout 40m
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
JOB_IMG ?= dbarchive-job:$(VERSION)
# The GCS library's gRPC transport is not used (the gcs driver speaks JSON
# and XML over HTTP); leaving it out makes the binary 20 MB smaller, and the
# binary's pages are half of dbarchive's resident memory.
BUILD_TAGS := disable_grpc_modules

AZURITE := node_modules/.bin/azurite-blob

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: build
build: ## Build bin/dbarchive (with cgo: zstd is the system's libzstd, from libzstd-dev).
	CGO_ENABLED=1 $(GO) build -trimpath -tags $(BUILD_TAGS) -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/dbarchive ./cmd/dbarchive

PREFIX ?= /usr/local

.PHONY: install
install: build ## Install dbarchive into $(PREFIX)/bin, and kubectl-dbarchive (the kubectl plugin) as a link to it.
	install -D -m 0755 $(LOCALBIN)/dbarchive $(DESTDIR)$(PREFIX)/bin/dbarchive
	ln -sf dbarchive $(DESTDIR)$(PREFIX)/bin/kubectl-dbarchive

.PHONY: docker-build-job
docker-build-job: ## Build the job image $(JOB_IMG), stamped with $(VERSION).
	docker build -f Dockerfile.job --build-arg VERSION=$(VERSION) -t $(JOB_IMG) .

# Container images, built with podman (make images; docker works too with
# PODMAN=docker PODMAN_FLAGS=). The job image is tagged with the name the
# operator of the same version uses as its default job image
# (dbv1.JobImage): an operator built from this tree runs these jobs.
PODMAN ?= podman
# runc and cgroupfs run where systemd does not manage cgroups (containers,
# CI sandboxes); explicit rlimits because such sandboxes refuse to raise them.
PODMAN_FLAGS ?= --runtime runc --cgroup-manager cgroupfs
PODMAN_ULIMITS ?= --ulimit nofile=1024:1024 --ulimit nproc=4096:4096
IMG_JOB_VERSIONED ?= ghcr.io/dbarchive/dbarchive:$(VERSION)
IMG_OPERATOR_VERSIONED ?= ghcr.io/dbarchive/dbarchive-operator:$(VERSION)
# The job image installs Debian packages and both download Go modules while
# building: host network.
IMAGE_BUILD_FLAGS ?= --network host $(PODMAN_ULIMITS) $(IMAGE_GO_CACHES)
# The host's Go module and build caches, mounted over the Dockerfiles' cache
# mounts (podman build -v wins over RUN --mount=type=cache): a first build
# downloads no module the host has and reuses what the host compiled with
# the same flags. Empty it for docker, or for a build that shares nothing.
IMAGE_GO_CACHES ?= -v $(shell $(GO) env GOMODCACHE):/go/pkg/mod -v $(shell $(GO) env GOCACHE):/root/.cache/go-build

.PHONY: images
images: ## Build the job and operator images from Dockerfile.job and Dockerfile.operator, tagged $(VERSION).
	$(PODMAN) $(PODMAN_FLAGS) build $(IMAGE_BUILD_FLAGS) -f Dockerfile.job --build-arg VERSION=$(VERSION) -t $(IMG_JOB_VERSIONED) .
	$(PODMAN) $(PODMAN_FLAGS) build $(IMAGE_BUILD_FLAGS) -f Dockerfile.operator --build-arg VERSION=$(VERSION) -t $(IMG_OPERATOR_VERSIONED) .

.PHONY: base-images
base-images: ## Make local stand-ins for the base images the Dockerfiles name (no registry needed; Debian's archive and the local Go).
	PODMAN="$(PODMAN) $(PODMAN_FLAGS)" hack/images/base-images.sh

.PHONY: cluster-assets
cluster-assets: envtest-assets ## Build kube-scheduler and kubectl into bin/k8s too, for make test-cluster.
	KUBE_VERSION=$(KUBE_VERSION) ENVTEST_ASSETS_DIR=$(LOCALBIN)/k8s hack/envtest/build.sh kube-scheduler kubectl

# The cluster tests run the images on a cluster of the real kube-apiserver,
# etcd, kube-controller-manager and kube-scheduler, with a node agent that
# runs each pod with podman; make deploy installs the operator. They are
# behind the build tag "cluster": make test and go test ./... never run them.
.PHONY: test-cluster
test-cluster: ## Run the end-to-end tests on a cluster: make images, make deploy, backups run from the images by podman (needs podman, runc; see README).
	@command -v $(firstword $(PODMAN)) >/dev/null || { echo "test-cluster: podman is not installed (apt-get install -y podman runc mmdebstrap); the cluster tests run every pod with it" >&2; exit 1; }
	$(MAKE) cluster-assets kustomize controller-gen
	@if [ "$(BASE_IMAGES)" != "pull" ]; then $(MAKE) base-images; fi
	$(MAKE) images VERSION=$(VERSION)
	$(GO) vet -tags cluster ./e2e/cluster/
	DBARCHIVE_PODMAN="$(PODMAN) $(PODMAN_FLAGS)" DBARCHIVE_PODMAN_ULIMITS="$(PODMAN_ULIMITS)" \
	IMG_JOB=$(IMG_JOB_VERSIONED) IMG_OPERATOR=$(IMG_OPERATOR_VERSIONED) VERSION=$(VERSION) \
	KUBECTL=$(LOCALBIN)/k8s/kubectl \
		$(GO) test -tags cluster -count=1 -timeout 30m -v ./e2e/cluster/

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet, and fail on unformatted files.
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The packages with goroutines of their own (upload workers, prefetchers,
# process runners, the job's signal handling, the reconcilers) run under the
# race detector; the rest run without it, which keeps make test's time down.
RACE_PKGS := ./archiver/... ./drivers/... ./sources/... ./job/... ./controller/...

.PHONY: test
test: test-deps envtest-assets vet ## Run every test: drivers on emulators, archiver and CLI on the local databases, operator on envtest (concurrent packages with -race).
	$(GO) test $(GOTEST_FLAGS) -race $(RACE_PKGS)
	$(GO) test $(GOTEST_FLAGS) $$($(GO) list ./... | grep -vE '/(archiver|drivers|sources|job|controller)(/|$$)')

.PHONY: conformance
conformance: test-deps ## Run the storage conformance suite on all five drivers.
	$(GO) test -count=1 -v ./conformance/...

.PHONY: bench
bench: envtest-assets ## Side-by-side benchmarks (dbarchive vs pg_dump|zstd|rclone, restore, memory, operator) into bench/RESULTS.md (about 10 min, 17 on a fresh machine); not part of make test. BENCH_SCALE=small, BENCH_RUNS=N, BENCH_ONLY=backup,restore,rss,operator.
	$(GO) run ./bench

.PHONY: bench-go
bench-go: test-deps ## Run the Go benchmarks: driver uploads, the pipeline, the CLI's peak RSS.
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./conformance/ ./archiver/ ./cmd/dbarchive/

.PHONY: fuzz
fuzz: ## Fuzz the manifest decoder and the URL parsers for 30s each.
	$(GO) test -run '^$$' -fuzz FuzzDecodeManifest -fuzztime 30s ./archiver/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./repourl/

GREMLINS_VERSION ?= v0.6.0
GREMLINS ?= $(LOCALBIN)/gremlins

.PHONY: mutation
mutation: gremlins test-deps ## Mutation testing with every mutator of gremlins on archiver, drivers, drivers/fs, sources and repourl, a summary per package; not part of make test (hours on a busy 2-core machine, see README). MUTATION_PKGS="sources repourl" for some.
	GREMLINS=$(GREMLINS) hack/mutation/run.sh $(MUTATION_PKGS)

.PHONY: mutation-summary
mutation-summary: ## Summarise every mutation report in .mutation (runs in parts, MUTATION_FILES, add up).
	hack/mutation/run.sh --summary

.PHONY: gremlins
gremlins: ## Build the pinned gremlins into bin/.
	@test -x $(GREMLINS) && $(GO) version -m $(GREMLINS) | grep -qE 'mod[[:space:]]+github.com/go-gremlins/gremlins[[:space:]]+$(GREMLINS_VERSION)[[:space:]]' || \
		GOBIN=$(LOCALBIN) $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)

include hack/operator.mk

##@ Dependencies

.PHONY: test-deps
test-deps: $(AZURITE) helm ## Install what the tests need (Azurite from package-lock.json, the pinned helm).

$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@
