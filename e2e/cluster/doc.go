// Package cluster holds the end-to-end tests that run what a user installs:
// the images built from Dockerfile.job and Dockerfile.operator (make
// images), installed by make deploy onto a cluster of the real
// kube-apiserver, etcd, kube-controller-manager and kube-scheduler, with a
// node agent (node_test.go) in place of the kubelet that runs every pod with
// podman. The operator runs as its pod with its own ServiceAccount and
// config/rbac's ClusterRole; the real Job, CronJob and garbage-collector
// controllers decide what happens to its Jobs.
//
// The files carry the build tag "cluster": go test ./... and make test never
// build them. make test-cluster builds what they need and runs them.
package cluster
