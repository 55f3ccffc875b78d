package controller

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// checkSpec catches what the CRD schema cannot (or what an object stored
// under an older schema may still carry), each with a reason and a message
// naming the field.
func TestCheckSpec(t *testing.T) {
	base := func() *dbv1.DatabaseBackupSpec {
		return &dbv1.DatabaseBackupSpec{
			Repos:            []dbv1.Repo{{Name: "r", Type: dbv1.RepoTypeS3, Bucket: "b"}},
			Source:           &dbv1.Source{Type: dbv1.SourceTypePostgres, Host: "h", Database: "d"},
			ScheduledTrigger: &dbv1.ScheduledTrigger{Enabled: true, Schedule: "0 * * * *", Repo: "r"},
			ManualTrigger:    &dbv1.ManualTrigger{Enabled: true, Time: "2022-12-15T02:59:43.1Z", Repo: "r"},
		}
	}
	cases := []struct {
		name      string
		change    func(*dbv1.DatabaseBackupSpec)
		reason    string
		inMessage string
	}{
		{"valid", func(*dbv1.DatabaseBackupSpec) {}, "", ""},
		{"unknown repo type", func(s *dbv1.DatabaseBackupSpec) { s.Repos[0].Type = "ftp" }, dbv1.ReasonRepoTypeUnknown, `"ftp"`},
		{"manual trigger names unknown repo", func(s *dbv1.DatabaseBackupSpec) { s.ManualTrigger.Repo = "x" }, dbv1.ReasonRepoNotFound, `manualTrigger.repo "x"`},
		{"scheduled trigger names unknown repo", func(s *dbv1.DatabaseBackupSpec) { s.ScheduledTrigger.Repo = "x" }, dbv1.ReasonRepoNotFound, `scheduledTrigger.repo "x"`},
		{"minute out of range", func(s *dbv1.DatabaseBackupSpec) { s.ScheduledTrigger.Schedule = "61 * * * *" }, dbv1.ReasonScheduleInvalid, `"61 * * * *"`},
		{"unknown time zone", func(s *dbv1.DatabaseBackupSpec) { s.ScheduledTrigger.TimeZone = ptr.To("Mars/Olympus") }, dbv1.ReasonScheduleInvalid, "Mars/Olympus"},
		{"bad manual time", func(s *dbv1.DatabaseBackupSpec) { s.ManualTrigger.Time = "soon" }, dbv1.ReasonSpecInvalid, `"soon"`},
		{"duplicate repo", func(s *dbv1.DatabaseBackupSpec) { s.Repos = append(s.Repos, s.Repos[0]) }, dbv1.ReasonSpecInvalid, `"r" is used twice`},
		{"fs without claim", func(s *dbv1.DatabaseBackupSpec) { s.Repos[0] = dbv1.Repo{Name: "r", Type: dbv1.RepoTypeFS} }, dbv1.ReasonSpecInvalid, "fs.claimName"},
		{"object store without bucket", func(s *dbv1.DatabaseBackupSpec) { s.Repos[0].Bucket = "" }, dbv1.ReasonSpecInvalid, "bucket or bucketNamePrefix"},
		{"no source", func(s *dbv1.DatabaseBackupSpec) { s.Source = nil }, dbv1.ReasonSourceMissing, "spec.source"},
		{"disabled triggers are still checked", func(s *dbv1.DatabaseBackupSpec) { s.ScheduledTrigger.Enabled = false; s.ScheduledTrigger.Repo = "x" }, dbv1.ReasonRepoNotFound, "scheduledTrigger"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.change(s)
			p := checkSpec(s)
			switch {
			case tc.reason == "" && p != nil:
				t.Fatalf("rejected: %s: %s", p.reason, p.message)
			case tc.reason == "":
			case p == nil:
				t.Fatalf("accepted; want %s", tc.reason)
			case p.reason != tc.reason || !strings.Contains(p.message, tc.inMessage):
				t.Fatalf("got %s: %q; want %s containing %q", p.reason, p.message, tc.reason, tc.inMessage)
			}
		})
	}
}

// One instant is one Job name however it is written; distinct instants
// differ; names fit the 63-character Job name limit.
func TestManualJobName(t *testing.T) {
	a, _ := parseTriggerTime("2022-12-15T02:59:43.1Z")
	b, _ := parseTriggerTime("2022-12-15T03:59:43.100+01:00")
	c, _ := parseTriggerTime("2022-12-15T02:59:43.2Z")
	if ManualJobName("x", a) != ManualJobName("x", b) {
		t.Error("the same instant written two ways gives two Job names")
	}
	if ManualJobName("x", a) == ManualJobName("x", c) {
		t.Error("distinct instants give one Job name")
	}
	if n := ManualJobName(strings.Repeat("n", 42), a); len(n) > 63 {
		t.Errorf("Job name %q is %d characters", n, len(n))
	}
}

// observeJobs: BackupRunning for a Job the job has not reported on; a Job
// failing or completing without a report becomes BackupFailed; the job's
// own report (status.reportedJob names the Job) is never overwritten,
// whatever the times say.
func TestObserveJobs(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := func(start time.Time, state batchv1.JobConditionType) batchv1.Job {
		j := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", CreationTimestamp: metav1.NewTime(start)}}
		j.Status.StartTime = ptr.To(metav1.NewTime(start))
		if state != "" {
			j.Status.Conditions = []batchv1.JobCondition{{Type: state, Status: corev1.ConditionTrue, Message: "deadline exceeded"}}
		}
		return j
	}
	cond := func(reason string, at time.Time) []metav1.Condition {
		status := map[string]metav1.ConditionStatus{
			dbv1.ReasonBackupSucceeded: metav1.ConditionTrue, dbv1.ReasonBackupFailed: metav1.ConditionFalse, dbv1.ReasonBackupRunning: metav1.ConditionUnknown,
		}[reason]
		return []metav1.Condition{{Type: dbv1.ConditionSucceeded, Status: status, Reason: reason, Message: "the job's word", LastTransitionTime: metav1.NewTime(at)}}
	}
	announced := func(j batchv1.Job) batchv1.Job {
		j.Annotations = map[string]string{annotationRunning: "true"}
		return j
	}
	cases := []struct {
		name     string
		conds    []metav1.Condition
		reported string // status.reportedJob
		job      batchv1.Job
		want     string
		keep     bool // the condition must still be the job's word
	}{
		{"running, no condition", nil, "", job(t0, ""), dbv1.ReasonBackupRunning, false},
		{"running, older success of another Job", cond(dbv1.ReasonBackupSucceeded, t0.Add(-time.Hour)), "older", job(t0, ""), dbv1.ReasonBackupRunning, false},
		{"running, job already reported", cond(dbv1.ReasonBackupSucceeded, t0.Add(time.Minute)), "j", job(t0, ""), dbv1.ReasonBackupSucceeded, true},
		{"failed without report", cond(dbv1.ReasonBackupRunning, t0.Add(time.Second)), "older", job(t0, batchv1.JobFailed), dbv1.ReasonBackupFailed, false},
		{"failed after reporting failure", cond(dbv1.ReasonBackupFailed, t0.Add(time.Minute)), "j", job(t0, batchv1.JobFailed), dbv1.ReasonBackupFailed, true},
		{"complete after reporting success", cond(dbv1.ReasonBackupSucceeded, t0.Add(time.Minute)), "j", job(t0, batchv1.JobComplete), dbv1.ReasonBackupSucceeded, true},
		{"complete without report", cond(dbv1.ReasonBackupRunning, t0.Add(time.Second)), "", job(t0, batchv1.JobComplete), dbv1.ReasonBackupFailed, false},
		{"running, announced once already", cond(dbv1.ReasonBackupSucceeded, t0.Add(-time.Hour)), "older", announced(job(t0, "")), dbv1.ReasonBackupSucceeded, true},
		// The pod's clock an hour behind: its report looks older than the
		// Job's start, and is still the job's.
		{"failed, report with a skewed clock", cond(dbv1.ReasonBackupFailed, t0.Add(-time.Hour)), "j", job(t0, batchv1.JobFailed), dbv1.ReasonBackupFailed, true},
		{"complete, success reported True after True", cond(dbv1.ReasonBackupSucceeded, t0.Add(-time.Hour)), "j", job(t0, batchv1.JobComplete), dbv1.ReasonBackupSucceeded, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &dbv1.DatabaseBackupStatus{Conditions: tc.conds, ReportedJob: tc.reported}
			observeJobs(st, 7, []batchv1.Job{tc.job})
			c := findCondition(st.Conditions, dbv1.ConditionSucceeded)
			if c == nil || c.Reason != tc.want {
				t.Fatalf("Succeeded = %+v, want reason %s", c, tc.want)
			}
			if tc.keep != (c.Message == "the job's word") {
				t.Fatalf("Succeeded message %q; job's word kept: %v, want %v", c.Message, !tc.keep, tc.keep)
			}
		})
	}
}

// Two DatabaseBackups made in the same second (creation times have whole
// seconds) are still ordered, by namespace/name: exactly one of them is
// the older, so one is refused and one keeps running, never both or none.
func TestOlderThanBreaksTiesByName(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 30, 6, 50, 0, 0, time.UTC))
	a := &dbv1.DatabaseBackup{ObjectMeta: metav1.ObjectMeta{Namespace: "dbb-x", Name: "orders", CreationTimestamp: at}}
	b := &dbv1.DatabaseBackup{ObjectMeta: metav1.ObjectMeta{Namespace: "dbb-other", Name: "orders", CreationTimestamp: at}}
	if olderThan(a, b) == olderThan(b, a) {
		t.Fatalf("same second: olderThan(a, b) = olderThan(b, a) = %v; want exactly one older", olderThan(a, b))
	}
	if !olderThan(b, a) {
		t.Errorf("same second: dbb-other/orders should be older than dbb-x/orders (namespace/name order)")
	}
	later := a.DeepCopy()
	later.CreationTimestamp = metav1.NewTime(at.Add(time.Second))
	if !olderThan(a, later) || olderThan(later, a) {
		t.Errorf("a resource made a second earlier is not the older")
	}
}

// observeJobs with an older Job that finished unobserved while the newest
// runs (the operator was down or slow when it failed): the failure goes
// into history and lastFailure, the condition follows the newest Job, and
// a Job already marked reported or the job's own report is left alone.
func TestObserveJobsRecordsAnOlderUnreportedFailure(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	older := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "stuck-1", CreationTimestamp: metav1.NewTime(t0)}}
	older.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded",
		Message: "Job was active longer than specified deadline", LastTransitionTime: metav1.NewTime(t0.Add(54 * time.Second))}}
	newest := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "stuck-2", CreationTimestamp: metav1.NewTime(t0.Add(time.Minute))}}

	st := &dbv1.DatabaseBackupStatus{}
	if got := observeJobs(st, 3, []batchv1.Job{newest, older}); got == nil || got.Name != "stuck-2" {
		t.Fatalf("announced %v, want stuck-2", got)
	}
	if c := findCondition(st.Conditions, dbv1.ConditionSucceeded); c == nil || c.Reason != dbv1.ReasonBackupRunning || !strings.Contains(c.Message, "stuck-2") {
		t.Errorf("Succeeded = %+v, want BackupRunning for stuck-2", c)
	}
	if len(st.History) != 1 || st.History[0].Job != "stuck-1" || st.History[0].Outcome != dbv1.RunFailed || !strings.Contains(st.History[0].Message, "deadline") {
		t.Errorf("history = %+v, want stuck-1's failure", st.History)
	}
	if f := st.LastFailure; f == nil || f.Job != "stuck-1" || f.Reason != "DeadlineExceeded" || !f.Time.Equal(&older.Status.Conditions[0].LastTransitionTime) {
		t.Errorf("lastFailure = %+v, want stuck-1 DeadlineExceeded at its failure", f)
	}
	// The operator stopped between the status write and marking the Job
	// reported: the next pass sees the same unmarked Job and adds nothing.
	observeJobs(st, 3, []batchv1.Job{newest, older})
	if len(st.History) != 1 {
		t.Errorf("after a second pass over the unmarked Job, history = %+v, want one entry", st.History)
	}

	for name, change := range map[string]func(st *dbv1.DatabaseBackupStatus, j *batchv1.Job){
		"already marked reported": func(_ *dbv1.DatabaseBackupStatus, j *batchv1.Job) {
			j.Annotations = map[string]string{annotationOutcome: string(batchv1.JobFailed)}
		},
		"the job's own report": func(st *dbv1.DatabaseBackupStatus, _ *batchv1.Job) { st.ReportedJob = "stuck-1" },
		"still running":        func(_ *dbv1.DatabaseBackupStatus, j *batchv1.Job) { j.Status.Conditions = nil },
	} {
		st := &dbv1.DatabaseBackupStatus{}
		j := *older.DeepCopy()
		change(st, &j)
		observeJobs(st, 3, []batchv1.Job{newest, j})
		if len(st.History) != 0 || st.LastFailure != nil {
			t.Errorf("%s: history %+v, lastFailure %+v; want nothing recorded", name, st.History, st.LastFailure)
		}
	}
}

// An older Job's report that comes after the newest Job was announced as
// running (a pod stopped at its deadline reports in its grace period) is
// kept in history, and the condition goes back to the run in progress; a
// report naming a Job the cache does not list (it may be newer) is left.
func TestObserveJobsLateReportOfAnOlderJob(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	older := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-1", CreationTimestamp: metav1.NewTime(t0),
		Annotations: map[string]string{annotationOutcome: string(batchv1.JobFailed)}}}
	older.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded"}}
	newest := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-2", CreationTimestamp: metav1.NewTime(t0.Add(time.Minute)),
		Annotations: map[string]string{annotationRunning: "true"}}}
	lateReport := func(reporter string) *dbv1.DatabaseBackupStatus {
		st := &dbv1.DatabaseBackupStatus{ActiveJob: "nightly-2", ReportedJob: reporter}
		setCondition(st, dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed, "the backup was stopped", 1)
		st.RecordRun(dbv1.BackupRun{Job: reporter, Outcome: dbv1.RunFailed, FinishedTime: metav1.NewTime(t0.Add(55 * time.Second)), Message: "the backup was stopped"}, dbv1.ReasonBackupFailed)
		return st
	}

	st := lateReport("nightly-1")
	if got := observeJobs(st, 1, []batchv1.Job{older, newest}); got != nil {
		t.Errorf("announced %s again", got.Name)
	}
	if c := findCondition(st.Conditions, dbv1.ConditionSucceeded); c == nil || c.Reason != dbv1.ReasonBackupRunning || !strings.Contains(c.Message, "nightly-2") {
		t.Errorf("Succeeded = %+v, want BackupRunning for nightly-2", c)
	}
	if len(st.History) != 1 || st.History[0].Message != "the backup was stopped" || st.LastFailure == nil || st.LastFailure.Job != "nightly-1" {
		t.Errorf("history %+v, lastFailure %+v: want nightly-1's own report kept", st.History, st.LastFailure)
	}

	st = lateReport("nightly-3") // not in the cache yet: maybe newer
	observeJobs(st, 1, []batchv1.Job{older, newest})
	if c := findCondition(st.Conditions, dbv1.ConditionSucceeded); c == nil || c.Reason != dbv1.ReasonBackupFailed {
		t.Errorf("Succeeded = %+v, want the report of the unlisted Job left as it is", c)
	}
}
