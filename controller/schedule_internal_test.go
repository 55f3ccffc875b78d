package controller

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

func mustSchedule(t *testing.T, s string, tz *string) parsedSchedule {
	t.Helper()
	p, ok := parseSchedule(&dbv1.ScheduledTrigger{Schedule: s, TimeZone: tz})
	if !ok {
		t.Fatalf("schedule %q does not parse", s)
	}
	return p
}

// The default deadline ends a stuck Job before the next run is due: the
// shortest interval less a tenth, at most five minutes less.
func TestScheduledDeadline(t *testing.T) {
	for _, c := range []struct {
		schedule string
		want     int64
	}{
		{"* * * * *", 54},
		{"*/5 * * * *", 270},
		{"@hourly", 3300},
		{"@daily", 86100},
		// Weekdays at 9: the shortest gap (a day) counts, not the weekend.
		{"0 9 * * 1-5", 86100},
		// Twice an hour, unevenly: 10 minutes is the shortest gap.
		{"0,10 * * * *", 540},
	} {
		if got := scheduledDeadline(mustSchedule(t, c.schedule, nil)); got != c.want {
			t.Errorf("scheduledDeadline(%q) = %d, want %d", c.schedule, got, c.want)
		}
	}
	// The derived value is the same on every call (it is part of the
	// CronJob's template, which must not change on each reconcile).
	p := mustSchedule(t, "0 2 * * *", ptr.To("Europe/Berlin"))
	if a, b := scheduledDeadline(p), scheduledDeadline(p); a != b {
		t.Fatalf("scheduledDeadline not stable: %d then %d", a, b)
	}
	// An explicit deadline wins, for either trigger.
	b := &dbv1.DatabaseBackup{Spec: dbv1.DatabaseBackupSpec{ActiveDeadlineSeconds: ptr.To[int64](77),
		ScheduledTrigger: &dbv1.ScheduledTrigger{Schedule: "* * * * *"}}}
	if jobDeadline(b, dbv1.JobTriggerScheduled) != 77 || jobDeadline(b, dbv1.JobTriggerManual) != 77 {
		t.Fatal("spec.activeDeadlineSeconds is not used")
	}
}

func scheduledJob(name string, at time.Time, finishedAt *time.Time) batchv1.Job {
	j := batchv1.Job{ObjectMeta: metav1.ObjectMeta{
		Name:              name,
		CreationTimestamp: metav1.NewTime(at.Add(time.Second)),
		Labels:            map[string]string{LabelTrigger: dbv1.JobTriggerScheduled},
		Annotations:       map[string]string{annotationScheduledTime: at.UTC().Format(time.RFC3339)},
	}}
	if finishedAt != nil {
		ft := metav1.NewTime(*finishedAt)
		j.Status.CompletionTime = &ft
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: ft}}
	}
	return j
}

func TestSkippedRun(t *testing.T) {
	p := mustSchedule(t, "0 * * * *", ptr.To("UTC"))
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

	// Still running two and a half hours later: 11:00 and 12:00 skipped.
	jobs := []batchv1.Job{scheduledJob("a", t0, nil)}
	skipped, blocker, recheck := skippedRun(p, jobs, t0.Add(150*time.Minute))
	if !skipped.Equal(t0.Add(2*time.Hour)) || blocker != "a" {
		t.Errorf("skipped %v by %q, want 12:00 by a", skipped, blocker)
	}
	if recheck != 30*time.Minute+2*time.Second {
		t.Errorf("recheck %v, want just after 13:00", recheck)
	}
	// Running, but the next run is not due yet: nothing skipped.
	if skipped, _, _ := skippedRun(p, jobs, t0.Add(30*time.Minute)); !skipped.IsZero() {
		t.Errorf("skipped %v before the next run was due", skipped)
	}
	// Finished after 11:00: 11:00 was skipped even though it is over now.
	done := t0.Add(70 * time.Minute)
	jobs = []batchv1.Job{scheduledJob("a", t0, &done)}
	if skipped, _, recheck := skippedRun(p, jobs, t0.Add(5*time.Hour)); !skipped.Equal(t0.Add(time.Hour)) || recheck != 0 {
		t.Errorf("skipped %v recheck %v, want 11:00 and no recheck", skipped, recheck)
	}
	// Finished in time: nothing skipped.
	done = t0.Add(20 * time.Minute)
	jobs = []batchv1.Job{scheduledJob("a", t0, &done)}
	if skipped, _, _ := skippedRun(p, jobs, t0.Add(5*time.Hour)); !skipped.IsZero() {
		t.Errorf("skipped %v after a Job that ended in time", skipped)
	}
}

func TestOverdue(t *testing.T) {
	p := mustSchedule(t, "0 * * * *", ptr.To("UTC"))
	since := time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC)
	window := 10 * time.Minute
	// The 11:00 run may take until 11:10.
	if od, again := overdue(p, since, window, since.Add(35*time.Minute)); od || again != 5*time.Minute+time.Second {
		t.Errorf("at 11:05: overdue %v, again %v; want false, after 11:10", od, again)
	}
	if od, _ := overdue(p, since, window, since.Add(41*time.Minute)); !od {
		t.Errorf("at 11:11 without a backup since 10:30: not overdue")
	}
}
