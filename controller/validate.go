package controller

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// problem is why a spec cannot be acted on: the Ready=False reason and a
// message naming the field or object at fault.
type problem struct {
	reason  string
	message string
	// recheck is when to look again without an event: Secrets are not
	// watched (the operator may only get them), so a missing one is polled.
	recheck time.Duration
}

// readiness is the Ready condition to write.
type readiness struct {
	reason, message string
}

func (r readiness) status() string {
	if r.reason == dbv1.ReasonReconciled {
		return "True"
	}
	return "False"
}

// validate returns the first reason b cannot be acted on, or nil. The CRD
// schema rejects most bad specs already; this repeats the checks that matter
// for safety (an object stored under an older schema, a schedule the CEL
// pattern lets through) and adds what a schema cannot know: that Secrets and
// keys exist.
func (r *Reconciler) validate(ctx context.Context, b *dbv1.DatabaseBackup) (*problem, error) {
	if p := checkSpec(&b.Spec); p != nil {
		return p, nil
	}
	if p := r.checkImage(b); p != nil {
		return p, nil
	}
	if p, err := r.checkRepoConflicts(ctx, b); p != nil || err != nil {
		return p, err
	}
	if p, err := r.checkSecrets(ctx, b); p != nil || err != nil {
		return p, err
	}
	return r.checkServiceAccount(ctx, b)
}

// checkServiceAccount reports a podTemplate.serviceAccountName that does not
// exist: the Job's pods could not be created.
func (r *Reconciler) checkServiceAccount(ctx context.Context, b *dbv1.DatabaseBackup) (*problem, error) {
	return r.serviceAccountProblem(ctx, b.Namespace, b.Spec.PodTemplate)
}

// serviceAccountProblem reports a podTemplate.serviceAccountName of pt that
// does not exist in namespace ns.
func (r *Reconciler) serviceAccountProblem(ctx context.Context, ns string, pt *dbv1.PodTemplate) (*problem, error) {
	if pt == nil || pt.ServiceAccountName == "" {
		return nil, nil
	}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: pt.ServiceAccountName}, &corev1.ServiceAccount{})
	switch {
	case apierrors.IsNotFound(err):
		return &problem{
			reason:  dbv1.ReasonServiceAccountMissing,
			message: fmt.Sprintf("podTemplate.serviceAccountName: ServiceAccount %q does not exist in namespace %s", pt.ServiceAccountName, ns),
			recheck: secretMissingRecheck,
		}, nil
	case err != nil:
		return nil, fmt.Errorf("get ServiceAccount %s/%s: %w", ns, pt.ServiceAccountName, err)
	}
	return nil, nil
}

// checkImage refuses a spec.image the operator's policy does not allow.
func (r *Reconciler) checkImage(b *dbv1.DatabaseBackup) *problem {
	return r.imageProblem(b.Spec.Image)
}

// imageProblem refuses a spec.image img the operator's policy does not
// allow; "" is the default image.
func (r *Reconciler) imageProblem(img string) *problem {
	if img == "" || img == r.defaultJobImage() {
		return nil
	}
	for _, pat := range r.AllowedJobImages {
		if ok, err := path.Match(pat, img); err == nil && ok {
			return nil
		}
	}
	allowed := r.AllowedJobImages
	if len(allowed) == 0 {
		allowed = []string{r.defaultJobImage()}
	}
	return &problem{reason: dbv1.ReasonImageNotAllowed, message: fmt.Sprintf(
		"spec.image %q is not allowed by the operator (allowed: %s); ask the operator's administrator to add it to --allowed-job-images",
		img, strings.Join(allowed, ", "))}
}

// repoLocationIndex indexes DatabaseBackups by the places in repos their
// backups go to, where another resource could use the same place.
const repoLocationIndex = "dbarchive.repoLocation"

// repoLocations are the places, in repos with an explicit prefix, that b
// writes to: the store, bucket (or claim and path) and prefix. Without a
// prefix the key prefix is <namespace>/<name>, which no other resource has.
func repoLocations(b *dbv1.DatabaseBackup) []string {
	var out []string
	for i := range b.Spec.Repos {
		repo := &b.Spec.Repos[i]
		if repo.Prefix == "" {
			continue
		}
		prefix := repo.KeyPrefix(b.Namespace, b.Name)
		var loc string
		if repo.Type == dbv1.RepoTypeFS {
			if repo.FS == nil {
				continue
			}
			loc = fmt.Sprintf("fs|%s|%s|%s|%s", b.Namespace, repo.FS.ClaimName, strings.Trim(repo.FS.Path, "/"), prefix)
		} else {
			endpoint := strings.TrimRight(strings.ToLower(repo.ServiceEndpoint), "/")
			if endpoint == "" {
				endpoint = "region:" + repo.Region
			}
			loc = fmt.Sprintf("%s|%s|%s|%s", repo.Type, endpoint, repo.ResolvedBucket(b.Name), prefix)
		}
		if !slices.Contains(out, loc) {
			out = append(out, loc)
		}
	}
	return out
}

// IndexRepoLocations registers the field index checkRepoConflicts uses.
func IndexRepoLocations(ctx context.Context, idx client.FieldIndexer) error {
	return idx.IndexField(ctx, &dbv1.DatabaseBackup{}, repoLocationIndex, func(o client.Object) []string {
		return repoLocations(o.(*dbv1.DatabaseBackup))
	})
}

// checkRepoConflicts refuses b when an older DatabaseBackup writes to the
// same place: each one's retention would delete the other's backups. The
// older one keeps running.
func (r *Reconciler) checkRepoConflicts(ctx context.Context, b *dbv1.DatabaseBackup) (*problem, error) {
	for _, loc := range repoLocations(b) {
		var list dbv1.DatabaseBackupList
		if err := r.Client.List(ctx, &list, client.MatchingFields{repoLocationIndex: loc}); err != nil {
			return nil, fmt.Errorf("list DatabaseBackups sharing a repo with %s/%s: %w", b.Namespace, b.Name, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			if o.UID == b.UID || !o.DeletionTimestamp.IsZero() || !olderThan(o, b) {
				continue
			}
			return &problem{
				reason: dbv1.ReasonRepoConflict,
				message: fmt.Sprintf("a repo writes to %s, where DatabaseBackup %s/%s already keeps its backups; each one's retention would delete the other's: give this one another prefix",
					describeLocation(loc), o.Namespace, o.Name),
				recheck: secretMissingRecheck,
			}, nil
		}
	}
	return nil, nil
}

func olderThan(a, b *dbv1.DatabaseBackup) bool {
	if n := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); n != 0 {
		return n < 0
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// describeLocation turns an index key back into words for a message.
func describeLocation(loc string) string {
	parts := strings.Split(loc, "|")
	if len(parts) != 4 && len(parts) != 5 {
		return loc
	}
	if parts[0] == "fs" {
		return fmt.Sprintf("claim %s path %q prefix %q", parts[2], parts[3], parts[4])
	}
	return fmt.Sprintf("%s bucket %s at %s prefix %q", parts[0], parts[2], parts[1], parts[3])
}

// checkSpec is the part of validation that needs nothing but the spec.
func checkSpec(s *dbv1.DatabaseBackupSpec) *problem {
	seen := map[string]bool{}
	for i := range s.Repos {
		repo := &s.Repos[i]
		if seen[repo.Name] {
			return &problem{reason: dbv1.ReasonSpecInvalid, message: fmt.Sprintf("spec.repos: repo name %q is used twice", repo.Name)}
		}
		seen[repo.Name] = true
		if !slices.Contains(dbv1.RepoTypes, repo.Type) {
			return &problem{reason: dbv1.ReasonRepoTypeUnknown, message: fmt.Sprintf("repo %q: type %q is not one of %v", repo.Name, repo.Type, dbv1.RepoTypes)}
		}
		if repo.Type == dbv1.RepoTypeFS && (repo.FS == nil || repo.FS.ClaimName == "") {
			return &problem{reason: dbv1.ReasonSpecInvalid, message: fmt.Sprintf("repo %q: type fs needs fs.claimName", repo.Name)}
		}
		if repo.Type != dbv1.RepoTypeFS && repo.Bucket == "" && repo.BucketNamePrefix == "" {
			return &problem{reason: dbv1.ReasonSpecInvalid, message: fmt.Sprintf("repo %q: type %s needs bucket or bucketNamePrefix", repo.Name, repo.Type)}
		}
	}
	if t := s.ManualTrigger; t != nil && s.RepoByName(t.Repo) == nil {
		return &problem{reason: dbv1.ReasonRepoNotFound, message: fmt.Sprintf("manualTrigger.repo %q is not a repo in spec.repos", t.Repo)}
	}
	if t := s.ScheduledTrigger; t != nil {
		if s.RepoByName(t.Repo) == nil {
			return &problem{reason: dbv1.ReasonRepoNotFound, message: fmt.Sprintf("scheduledTrigger.repo %q is not a repo in spec.repos", t.Repo)}
		}
		// The CRD's pattern only checks the shape; robfig/cron is the parser
		// the CronJob controller itself uses, so it catches "61 * * * *".
		if _, err := cron.ParseStandard(t.Schedule); err != nil {
			return &problem{reason: dbv1.ReasonScheduleInvalid, message: fmt.Sprintf("scheduledTrigger.schedule %q: %v", t.Schedule, err)}
		}
		if t.TimeZone != nil {
			if _, err := time.LoadLocation(*t.TimeZone); err != nil {
				return &problem{reason: dbv1.ReasonScheduleInvalid, message: fmt.Sprintf("scheduledTrigger.timeZone %q is not a known time zone", *t.TimeZone)}
			}
		}
	}
	if v := s.Verification; v != nil && v.Enabled && v.Schedule != "" {
		if _, err := cron.ParseStandard(v.Schedule); err != nil {
			return &problem{reason: dbv1.ReasonScheduleInvalid, message: fmt.Sprintf("verification.schedule %q: %v", v.Schedule, err)}
		}
		if s.RepoByName(s.VerificationRepo()) == nil {
			return &problem{reason: dbv1.ReasonRepoNotFound, message: "verification: no repo to drill from; set verification.repo to one of spec.repos"}
		}
	}
	if t := s.ManualTrigger; t != nil {
		if _, err := parseTriggerTime(t.Time); err != nil {
			return &problem{reason: dbv1.ReasonSpecInvalid, message: fmt.Sprintf("manualTrigger.time %q is not an RFC 3339 time", t.Time)}
		}
	}
	if s.Source == nil {
		return &problem{reason: dbv1.ReasonSourceMissing, message: "spec.source is not set: there is no database to back up"}
	}
	return nil
}

// secretRef is one Secret (and optionally one key in it) the spec needs.
type secretRef struct {
	field string // where the spec names it, for the message
	name  string
	key   string // "" when any content will do
}

func neededSecrets(s *dbv1.DatabaseBackupSpec) []secretRef {
	var refs []secretRef
	for i := range s.Repos {
		repo := &s.Repos[i]
		if repo.SecretName != "" {
			refs = append(refs, secretRef{field: fmt.Sprintf("repo %q secretName", repo.Name), name: repo.SecretName})
		}
		if repo.CABundle != nil {
			refs = append(refs, secretRef{field: fmt.Sprintf("repo %q caBundle", repo.Name), name: repo.CABundle.SecretName, key: repo.CABundleKey()})
		}
	}
	if p := s.Source.PasswordSecretRef; p != nil {
		refs = append(refs, secretRef{field: "source.passwordSecretRef", name: p.Name, key: p.Key})
	}
	if v := s.Verification; v != nil && v.Enabled && v.IdentitySecret != nil {
		refs = append(refs, secretRef{field: "verification.identitySecret", name: v.IdentitySecret.Name, key: v.IdentitySecret.Key})
	}
	if e := s.Encryption; e != nil && e.RecipientsSecret != nil {
		refs = append(refs, secretRef{field: "encryption.recipientsSecret", name: e.RecipientsSecret.Name, key: e.RecipientsSecret.Key})
	}
	return refs
}

// checkSecrets reports the first Secret or key the spec names that does not
// exist. It reads Secrets uncached and looks only at key names.
func (r *Reconciler) checkSecrets(ctx context.Context, b *dbv1.DatabaseBackup) (*problem, error) {
	return r.checkSecretRefs(ctx, b.Namespace, neededSecrets(&b.Spec))
}

// checkSecretRefs reports the first of refs, in namespace ns, that does not
// exist, reading Secrets uncached and looking only at key names.
//
// It asks the API server for its watch cache's copy first (resourceVersion
// "0"): that read costs the API server no etcd round trip, and with two
// Secrets per DatabaseBackup it was a quarter of the operator's requests.
// The watch cache may be a moment behind, so a problem it shows (a Secret
// or key just created) is confirmed with a quorum read before it is
// reported. That a Secret the cache still has was deleted a moment ago is
// the race the quorum read always had: it could be deleted right after it.
func (r *Reconciler) checkSecretRefs(ctx context.Context, ns string, refs []secretRef) (*problem, error) {
	p, err := r.secretRefsProblem(ctx, ns, refs, watchCacheRead)
	if p == nil || err != nil {
		return p, err
	}
	return r.secretRefsProblem(ctx, ns, refs)
}

// watchCacheRead is a get the API server answers from its watch cache: any
// resourceVersion will do.
var watchCacheRead = &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}

// secretRefsProblem reports the first of refs, in namespace ns, that does
// not exist, reading each Secret once with opts.
func (r *Reconciler) secretRefsProblem(ctx context.Context, ns string, refs []secretRef, opts ...client.GetOption) (*problem, error) {
	fetched := map[string]*corev1.Secret{}
	for _, ref := range refs {
		sec, ok := fetched[ref.name]
		if !ok {
			sec = &corev1.Secret{}
			err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.name}, sec, opts...)
			switch {
			case apierrors.IsNotFound(err):
				sec = nil
			case err != nil:
				return nil, fmt.Errorf("get Secret %s/%s for %s: %w", ns, ref.name, ref.field, err)
			}
			fetched[ref.name] = sec
		}
		if sec == nil {
			return &problem{
				reason:  dbv1.ReasonSecretMissing,
				message: fmt.Sprintf("%s: Secret %q does not exist in namespace %s", ref.field, ref.name, ns),
				recheck: secretMissingRecheck,
			}, nil
		}
		if ref.key == "" {
			continue
		}
		if _, ok := sec.Data[ref.key]; !ok {
			if _, ok := sec.StringData[ref.key]; !ok {
				return &problem{
					reason:  dbv1.ReasonSecretKeyMissing,
					message: fmt.Sprintf("%s: Secret %q has no key %q", ref.field, ref.name, ref.key),
					recheck: secretMissingRecheck,
				}, nil
			}
		}
	}
	return nil, nil
}

// parseTriggerTime parses manualTrigger.time as the CRD's date-time format
// does (RFC 3339 with optional fractional seconds).
func parseTriggerTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}
