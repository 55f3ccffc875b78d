package controller

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
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

// ClientConfig is cfg as the operator talks to the API server with: a copy
// that asks for uncompressed responses. client-go's transport otherwise
// asks for gzip, and the API server then compresses every watch stream
// that began with its initial list (client-go's informers start so), event
// by event, for the life of the watch, and the operator decompresses it:
// with 10,000 DatabaseBackups that was CPU on both sides for no gain, the
// operator and the API server being in one cluster. The wire format stays
// as controller-runtime picks it: protobuf for built-in kinds, JSON for
// the CRDs (which have no protobuf).
func ClientConfig(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.DisableCompression = true
	return out
}
