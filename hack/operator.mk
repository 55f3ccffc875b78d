# Operator targets: paste into the Makefile (or `include hack/operator.mk`).
# Tools are pinned and built into ./bin from the Go module proxy.

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
KUBE_VERSION ?= v1.37.2
ETCD_VERSION ?= v3.7.3
HELM_VERSION ?= v3.22.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
HELM ?= $(LOCALBIN)/helm
CHART := charts/dbarchive-operator
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
	$(MAKE) --no-print-directory chart-sync

.PHONY: chart-sync
chart-sync: ## Copy the CRDs, the operator's RBAC rules and the alert rules from config/ into the Helm chart (internal/helmchart fails when they differ).
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml $(CHART)/files/
	cp config/prometheus/rules.yaml $(CHART)/files/prometheus-rules.yaml

.PHONY: helm-lint
helm-lint: helm ## helm lint --strict the chart, and render it with every toggle on.
	$(HELM) lint --strict $(CHART)
	$(HELM) template dbarchive-operator $(CHART) --namespace dbarchive-system \
		--set serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true >/dev/null

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

# helm's release builds stamp their version and the Kubernetes version of
# their client-go (v0.37 for helm v3.22.0: `helm template` then assumes
# Kubernetes 1.37, and the chart's kubeVersion ">=1.31" holds); a plain go
# install stamps neither (it would say "v3.22" and assume Kubernetes 1.20).
HELM_KUBE_MINOR ?= 37
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_KUBE_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_KUBE_MINOR)

.PHONY: helm
helm: ## Build the pinned helm into bin/, stamped as its release builds are.
	@test -x $(HELM) && [ "$$($(HELM) version --template '{{.Version}}')" = '$(HELM_VERSION)' ] || \
		GOBIN=$(LOCALBIN) go install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: kustomize
kustomize: ## Build the pinned kustomize into bin/.
	@test -x $(KUSTOMIZE) && $(KUSTOMIZE) version | grep -q '$(KUSTOMIZE_VERSION)' || \
		GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
