// Package e2e holds the end-to-end tests of the operator and the backup job
// together: a real kube-apiserver and etcd (envtest), the controller, and a
// kubelet stand-in that runs each Job's container — the dbarchive binary
// built from this tree — as a local process against the real PostgreSQL and
// MariaDB servers and the storage emulators.
//
// It has no non-test code beyond this comment.
package e2e
