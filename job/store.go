package job

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/internal/restclient"
)

// Store is all the job needs of the API server: read its DatabaseBackup and
// write that resource's status, as its Role allows.
type Store interface {
	Get(ctx context.Context, key types.NamespacedName) (*dbv1.DatabaseBackup, error)
	// UpdateStatus writes db.Status with db's resourceVersion as an
	// optimistic lock; a stale version is a Conflict error.
	UpdateStatus(ctx context.Context, db *dbv1.DatabaseBackup) error
}

// restStore is a Store on a REST client for the one resource. It is
// deliberately not controller-runtime's or client-go's typed client: those
// link every built-in API group into the binary, whose pages then made up a
// quarter of the backup's peak memory (measured: 94 MB with them, 66 MB
// without, for the same 1 GiB backup).
type restStore struct{ rc *rest.RESTClient }

// NewStore connects to the API server the way kubectl does: $KUBECONFIG or
// ~/.kube/config when present, else the pod's in-cluster ServiceAccount.
func NewStore() (Store, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("find the Kubernetes API server: %w", err)
	}
	return NewStoreFor(cfg)
}

// NewStoreFor is a Store on the API server cfg points at.
func NewStoreFor(cfg *rest.Config) (Store, error) {
	rc, err := restclient.For(cfg, "dbarchive-job")
	if err != nil {
		return nil, err
	}
	return &restStore{rc: rc}, nil
}

const resource = "databasebackups"

func (s *restStore) Get(ctx context.Context, key types.NamespacedName) (*dbv1.DatabaseBackup, error) {
	out := &dbv1.DatabaseBackup{}
	err := s.rc.Get().Namespace(key.Namespace).Resource(resource).Name(key.Name).Do(ctx).Into(out)
	return out, err
}

func (s *restStore) UpdateStatus(ctx context.Context, db *dbv1.DatabaseBackup) error {
	return s.rc.Put().Namespace(db.Namespace).Resource(resource).Name(db.Name).SubResource("status").
		Body(db).Do(ctx).Into(db)
}

// RestoreStore is all the restore job needs of the API server, as its Role
// allows: read its DatabaseRestore and the DatabaseBackup it names, and
// patch the DatabaseRestore's status.
type RestoreStore interface {
	GetRestore(ctx context.Context, key types.NamespacedName) (*dbv1.DatabaseRestore, error)
	GetBackup(ctx context.Context, key types.NamespacedName) (*dbv1.DatabaseBackup, error)
	// PatchRestoreStatus replaces dr's status by a merge patch that carries
	// dr's resourceVersion as an optimistic lock: a stale version is a
	// Conflict error.
	PatchRestoreStatus(ctx context.Context, dr *dbv1.DatabaseRestore) error
}

// NewRestoreStore is a RestoreStore on the API server cfg points at (see
// NewStore for how it is found when cfg is nil).
func NewRestoreStore(cfg *rest.Config) (RestoreStore, error) {
	if cfg == nil {
		var err error
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("find the Kubernetes API server: %w", err)
		}
	}
	s, err := NewStoreFor(cfg)
	if err != nil {
		return nil, err
	}
	return s.(*restStore), nil
}

func (s *restStore) GetRestore(ctx context.Context, key types.NamespacedName) (*dbv1.DatabaseRestore, error) {
	out := &dbv1.DatabaseRestore{}
	err := s.rc.Get().Namespace(key.Namespace).Resource("databaserestores").Name(key.Name).Do(ctx).Into(out)
	return out, err
}

func (s *restStore) GetBackup(ctx context.Context, key types.NamespacedName) (*dbv1.DatabaseBackup, error) {
	return s.Get(ctx, key)
}

func (s *restStore) PatchRestoreStatus(ctx context.Context, dr *dbv1.DatabaseRestore) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": dr.ResourceVersion},
		"status":   dr.Status,
	})
	if err != nil {
		return err
	}
	return s.rc.Patch(types.MergePatchType).Namespace(dr.Namespace).Resource("databaserestores").Name(dr.Name).
		SubResource("status").Body(patch).Do(ctx).Into(dr)
}
