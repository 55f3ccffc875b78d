package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func waitForCronJob(t *testing.T, cl *cluster, name string) *batchv1.CronJob {
	t.Helper()
	cj := &batchv1.CronJob{}
	eventually(t, 60*time.Second, func() error {
		return cl.c.Get(context.Background(), types.NamespacedName{Namespace: cl.ns, Name: name}, cj)
	})
	return cj
}

// jobFromCronJob creates the Job the CronJob controller would start for one
// scheduled time: the template's labels, annotations and spec, owned by the
// CronJob.
func jobFromCronJob(t *testing.T, cl *cluster, cj *batchv1.CronJob, n int) *batchv1.Job {
	t.Helper()
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s-%d", cj.Name, 29000000+n),
			Namespace:   cj.Namespace,
			Labels:      cj.Spec.JobTemplate.Labels,
			Annotations: cj.Spec.JobTemplate.Annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	must(t, cl.c.Create(context.Background(), j))
	return j
}
