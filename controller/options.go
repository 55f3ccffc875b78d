package controller

import (
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// DefaultMaxConcurrentReconciles is the operator's --max-concurrent-reconciles
// default: DatabaseBackups reconciled in parallel.
const DefaultMaxConcurrentReconciles = 4

// ManagerOptions are the manager settings the operator runs with: scheme,
// and caches narrowed by CacheOptions and, when namespaces is not empty, to
// those namespaces (empty watches all). cmd/operator adds its endpoints and
// leader election; the operator benchmark uses the rest unchanged, so that
// it measures what users run.
func ManagerOptions(scheme *runtime.Scheme, namespaces []string) ctrl.Options {
	opts := CacheOptions()
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return ctrl.Options{Scheme: scheme, Cache: opts}
}
