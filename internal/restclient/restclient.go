// Package restclient makes the plain REST client the dbarchive binary talks
// to the API server with, for our API group only. The job and the kubectl
// plugin use it instead of controller-runtime's or client-go's typed
// clients, which link every built-in API group into the binary (measured:
// a quarter of a backup's peak memory was their pages).
package restclient

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// For is a REST client for database.sample.third.party/v1alpha1 on the API
// server cfg points at, identifying itself as userAgent.
func For(cfg *rest.Config, userAgent string) (*rest.RESTClient, error) {
	cfg = rest.CopyConfig(cfg)
	scheme := runtime.NewScheme()
	if err := dbv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cfg.APIPath = "/apis"
	cfg.GroupVersion = &dbv1.GroupVersion
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	cfg.UserAgent = userAgent
	return rest.RESTClientFor(cfg)
}
