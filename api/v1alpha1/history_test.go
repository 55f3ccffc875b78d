package v1alpha1

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A run found late goes into history by its finish time, never replaces a
// Job's own entry, and never moves lastFailure or lastSuccessfulTime back.
func TestRecordEarlierRun(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	at := func(h int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(h) * time.Hour)) }
	jobs := func(st *DatabaseBackupStatus) string {
		var out []string
		for _, h := range st.History {
			out = append(out, h.Job)
		}
		return fmt.Sprint(out)
	}
	newStatus := func() *DatabaseBackupStatus {
		st := &DatabaseBackupStatus{}
		st.RecordRun(BackupRun{Job: "j1", Outcome: RunFailed, FinishedTime: at(1), Message: "first"}, "BackoffLimitExceeded")
		st.RecordRun(BackupRun{Job: "j3", Outcome: RunSucceeded, FinishedTime: at(3)}, "")
		return st
	}

	st := newStatus()
	st.RecordEarlierRun(BackupRun{Job: "j2", Outcome: RunFailed, FinishedTime: at(2), Message: "late"}, "DeadlineExceeded")
	if got := jobs(st); got != "[j3 j2 j1]" {
		t.Errorf("history = %s, want [j3 j2 j1]", got)
	}
	if st.LastFailure == nil || st.LastFailure.Job != "j2" || st.LastFailure.Reason != "DeadlineExceeded" {
		t.Errorf("lastFailure = %+v, want j2's (newer than j1's)", st.LastFailure)
	}
	if !st.LastSuccessfulTime.Equal(ptrTime(at(3))) {
		t.Errorf("lastSuccessfulTime = %v, want j3's", st.LastSuccessfulTime)
	}

	st = newStatus()
	st.RecordEarlierRun(BackupRun{Job: "j0", Outcome: RunFailed, FinishedTime: at(0), Message: "oldest"}, "DeadlineExceeded")
	if got := jobs(st); got != "[j3 j1 j0]" {
		t.Errorf("history = %s, want [j3 j1 j0]", got)
	}
	if st.LastFailure.Job != "j1" {
		t.Errorf("lastFailure moved back to %s, want j1's", st.LastFailure.Job)
	}

	st = newStatus()
	st.RecordEarlierRun(BackupRun{Job: "j1", Outcome: RunFailed, FinishedTime: at(2), Message: "operator's reading"}, "DeadlineExceeded")
	if got := jobs(st); got != "[j3 j1]" || st.History[1].Message != "first" {
		t.Errorf("history = %s (j1: %q), want the job's own entry kept", got, st.History[1].Message)
	}

	// A full history whose every entry is newer has no place for it.
	st = &DatabaseBackupStatus{}
	for h := 1; h <= MaxHistory; h++ {
		st.RecordRun(BackupRun{Job: fmt.Sprintf("n%d", h), Outcome: RunSucceeded, FinishedTime: at(h)}, "")
	}
	st.RecordEarlierRun(BackupRun{Job: "old", Outcome: RunFailed, FinishedTime: at(0)}, "DeadlineExceeded")
	if len(st.History) != MaxHistory || st.History[MaxHistory-1].Job != "n1" || st.LastFailure != nil {
		t.Errorf("an entry older than a full history was kept: %s, lastFailure %+v", jobs(st), st.LastFailure)
	}
	st.RecordEarlierRun(BackupRun{Job: "mid", Outcome: RunFailed, FinishedTime: at(5)}, "DeadlineExceeded")
	if len(st.History) != MaxHistory || st.History[MaxHistory-1].Job != "n2" {
		t.Errorf("history = %s, want mid in and n1 out", jobs(st))
	}
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }
