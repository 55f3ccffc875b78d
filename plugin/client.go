package plugin

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

// client talks to the API server for our group only. It is a REST client,
// not controller-runtime's: the plugin is the dbarchive binary, whose size
// is part of every backup's memory.
type client struct {
	rc        *rest.RESTClient
	namespace string // the kubeconfig's or --namespace
}

// connect loads the user's kubeconfig the way kubectl does ($KUBECONFIG,
// ~/.kube/config, --kubeconfig, --context, --namespace).
func connect(f *flags) (*client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f.kubeconfig != "" {
		rules.ExplicitPath = f.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.context}
	if f.namespace != "" {
		overrides.Context.Namespace = f.namespace
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	rc, err := restclient.For(cfg, "kubectl-dbarchive")
	if err != nil {
		return nil, err
	}
	return &client{rc: rc, namespace: ns}, nil
}

const backups = "databasebackups"

func (c *client) getBackup(ctx context.Context, ns, name string) (*dbv1.DatabaseBackup, error) {
	out := &dbv1.DatabaseBackup{}
	err := c.rc.Get().Namespace(ns).Resource(backups).Name(name).Do(ctx).Into(out)
	return out, err
}

// listBackups lists one namespace's DatabaseBackups, or every namespace's
// when ns is "".
func (c *client) listBackups(ctx context.Context, ns string) ([]dbv1.DatabaseBackup, error) {
	out := &dbv1.DatabaseBackupList{}
	req := c.rc.Get().Resource(backups)
	if ns != "" {
		req = req.Namespace(ns)
	}
	err := req.Do(ctx).Into(out)
	return out.Items, err
}

// mergePatchBackup applies a JSON merge patch to a DatabaseBackup's spec.
func (c *client) mergePatchBackup(ctx context.Context, ns, name string, patch any) (*dbv1.DatabaseBackup, error) {
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	out := &dbv1.DatabaseBackup{}
	err = c.rc.Patch(types.MergePatchType).Namespace(ns).Resource(backups).Name(name).Body(body).Do(ctx).Into(out)
	return out, err
}

const restores = "databaserestores"

func (c *client) createRestore(ctx context.Context, dr *dbv1.DatabaseRestore) (*dbv1.DatabaseRestore, error) {
	out := &dbv1.DatabaseRestore{}
	err := c.rc.Post().Namespace(dr.Namespace).Resource(restores).Body(dr).Do(ctx).Into(out)
	return out, err
}

func (c *client) getRestore(ctx context.Context, ns, name string) (*dbv1.DatabaseRestore, error) {
	out := &dbv1.DatabaseRestore{}
	err := c.rc.Get().Namespace(ns).Resource(restores).Name(name).Do(ctx).Into(out)
	return out, err
}
