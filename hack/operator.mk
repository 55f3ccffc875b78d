# Operator targets: paste into the Makefile (or `include hack/operator.mk`).
# Tools are pinned and built into ./bin from the Go module proxy.

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
KUBE_VERSION ?= v1.37.2
ETCD_VERSION ?= v3.7.3
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
KUSTOMIZE ?= $(LOCALBIN)/kustomize
KUBECTL ?= kubectl
IMG_OPERATOR ?= ghcr.io/dbarchive/dbarchive-operator:latest

##@ Operator

.PHONY: generate
generate: controller-gen ## Generate the DeepCopy methods of api/ (zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: manifests
manifests: controller-gen ## Generate the CRD (config/crd/bases) and the operator's ClusterRole (config/rbac/role.yaml).
	$(CONTROLLER_GEN) rbac:roleName=dbarchive-operator crd:crdVersions=v1 paths="./api/...;./controller/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, kube-controller-manager and etcd for envtest into bin/k8s (once, then cached).
	KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) ENVTEST_ASSETS_DIR=$(LOCALBIN)/k8s hack/envtest/build.sh

.PHONY: test-operator
test-operator: envtest-assets ## Run the operator's tests against the real kube-apiserver, etcd and kube-controller-manager (job and controller with -race).
	go test -count=1 -race ./job/... ./controller/...
	go test -count=1 ./api/... ./internal/envtest/... ./cmd/operator/...

OPERATOR_BENCH ?= BenchmarkReconcile10000

.PHONY: bench-operator
bench-operator: envtest-assets ## Benchmark: 10,000 DatabaseBackups in 100 namespaces reconciled to CronJobs (OPERATOR_BENCH=BenchmarkReconcile1000 for 1,000 in 20; DBARCHIVE_BENCH_PROFILE_DIR=dir for the operator's CPU and heap profiles).
	go test ./controller/ -run '^$$' -bench '^$(OPERATOR_BENCH)$$' -benchtime=1x -timeout=1h -v

.PHONY: deploy
deploy: manifests kustomize ## Install the CRD, RBAC and operator (image IMG_OPERATOR) into the cluster of the current kubeconfig.
	@set -e; dir=$(CURDIR)/bin/deploy; rm -rf "$$dir"; mkdir -p "$$dir"; \
	printf 'resources:\n- ../../config/default\n' > "$$dir/kustomization.yaml"; \
	(cd "$$dir" && $(KUSTOMIZE) edit set image ghcr.io/dbarchive/dbarchive-operator=$(IMG_OPERATOR)); \
	$(KUSTOMIZE) build "$$dir" | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove what deploy installed (the CRD too, and with it every DatabaseBackup).
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=true -f -

.PHONY: controller-gen
controller-gen: ## Build the pinned controller-gen into bin/.
	@test -x $(CONTROLLER_GEN) && $(CONTROLLER_GEN) --version | grep -q '$(CONTROLLER_TOOLS_VERSION)$$' || \
		GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: kustomize
kustomize: ## Build the pinned kustomize into bin/.
	@test -x $(KUSTOMIZE) && $(KUSTOMIZE) version | grep -q '$(KUSTOMIZE_VERSION)' || \
		GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
