// Package helmchart holds the tests of the Helm chart in
// charts/dbarchive-operator: that `helm lint --strict` passes, that its
// values schema rejects a typo'd value, that its CRDs, RBAC rules, alert
// rules and Deployment stay what config/ (the kustomize install, generated
// by controller-gen) says, and that everything it renders, with every
// toggle on, passes a server-side dry run on a real kube-apiserver
// (envtest) with the chart's CRDs and the prometheus-operator's installed.
//
// helm is the pinned version of hack/operator.mk (HELM_VERSION), built from
// the Go module proxy into bin/ by `make helm` or by the tests themselves.
package helmchart
