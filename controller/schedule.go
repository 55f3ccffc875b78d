package controller

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/lru"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

const (
	// defaultManualDeadline bounds a manual backup Job without
	// spec.activeDeadlineSeconds.
	defaultManualDeadline = int64(24 * 60 * 60)
	// scheduleSamples is how many consecutive activations, from a fixed
	// reference time, the interval of a schedule is measured over: enough
	// for weekday and monthly patterns, cheap enough for every reconcile.
	scheduleSamples = 120
	// annotationScheduledTime is set by the CronJob controller on the Jobs it
	// creates: the scheduled time the Job is for.
	annotationScheduledTime = "batch.kubernetes.io/cronjob-scheduled-timestamp"
)

// scheduleRef is the fixed start of interval measurements, so that the
// derived deadline (part of the CronJob's template) is the same on every
// reconcile.
var scheduleRef = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// parsedSchedule is a validated scheduledTrigger in its time zone.
type parsedSchedule struct {
	spec  string // the schedule as written
	sched cron.Schedule
	loc   *time.Location
}

func parseSchedule(t *dbv1.ScheduledTrigger) (parsedSchedule, bool) {
	sched, err := cron.ParseStandard(t.Schedule)
	if err != nil {
		return parsedSchedule{}, false
	}
	loc := time.Local
	if t.TimeZone != nil {
		if l, err := time.LoadLocation(*t.TimeZone); err == nil {
			loc = l
		}
	}
	return parsedSchedule{spec: t.Schedule, sched: sched, loc: loc}, true
}

// next is the first activation strictly after t.
func (p parsedSchedule) next(t time.Time) time.Time { return p.sched.Next(t.In(p.loc)) }

// intervals are the shortest and longest gaps between consecutive
// activations.
func (p parsedSchedule) intervals() (shortest, longest time.Duration) {
	t := p.next(scheduleRef)
	for range scheduleSamples {
		n := p.next(t)
		if n.IsZero() {
			break
		}
		gap := n.Sub(t)
		if shortest == 0 || gap < shortest {
			shortest = gap
		}
		if gap > longest {
			longest = gap
		}
		t = n
	}
	return shortest, longest
}

// shortestIntervals memoises the shortest interval by schedule and time
// zone: it depends on nothing else (the measurement starts at scheduleRef),
// and measuring it twice per reconcile was a tenth of the operator's CPU at
// 10,000 DatabaseBackups. Bounded, as schedules are user input.
var shortestIntervals = lru.New(4096)

// shortestInterval is p.intervals()'s shortest.
func (p parsedSchedule) shortestInterval() time.Duration {
	key := p.spec + "\x00" + p.loc.String()
	if v, ok := shortestIntervals.Get(key); ok {
		return v.(time.Duration)
	}
	shortest, _ := p.intervals()
	shortestIntervals.Add(key, shortest)
	return shortest
}

// scheduledDeadline is the default activeDeadlineSeconds of a scheduled
// Job: the shortest interval less a tenth of it (at most five minutes), so
// a stuck Job ends before the next run is due and Forbid does not skip it.
func scheduledDeadline(p parsedSchedule) int64 {
	shortest := p.shortestInterval()
	if shortest <= 0 {
		return defaultManualDeadline
	}
	margin := min(shortest/10, 5*time.Minute)
	return max(int64((shortest-margin)/time.Second), 1)
}

// jobDeadline is the activeDeadlineSeconds of b's Jobs of a trigger.
func jobDeadline(b *dbv1.DatabaseBackup, trigger string) int64 {
	if b.Spec.ActiveDeadlineSeconds != nil {
		return *b.Spec.ActiveDeadlineSeconds
	}
	if trigger == dbv1.JobTriggerScheduled && b.Spec.ScheduledTrigger != nil {
		if p, ok := parseSchedule(b.Spec.ScheduledTrigger); ok {
			return scheduledDeadline(p)
		}
	}
	return defaultManualDeadline
}

// scheduledFor is the time the CronJob controller created j for, or its
// creation time.
func scheduledFor(j *batchv1.Job) time.Time {
	if v := j.Annotations[annotationScheduledTime]; v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t
		}
	}
	return j.CreationTimestamp.Time
}

// skippedRun returns the latest scheduled time at which the CronJob could not
// start a Job because the newest scheduled Job was still running (Forbid):
// an activation after that Job's own time and before it ended (or now). It
// returns the zero time when there is none, and when to look again (zero
// when nothing runs).
func skippedRun(p parsedSchedule, jobs []batchv1.Job, now time.Time) (skipped time.Time, blocker string, recheck time.Duration) {
	var newest *batchv1.Job
	for i := range jobs {
		j := &jobs[i]
		if j.Labels[LabelTrigger] != dbv1.JobTriggerScheduled {
			continue
		}
		if newest == nil || scheduledFor(j).After(scheduledFor(newest)) {
			newest = j
		}
	}
	if newest == nil {
		return time.Time{}, "", 0
	}
	end := now
	if finished(newest) != "" {
		end = finishTime(newest)
	}
	for t := p.next(scheduledFor(newest)); !t.IsZero() && !t.After(end); t = p.next(t) {
		skipped = t
	}
	if finished(newest) == "" {
		// Look again just after the next activation, when the CronJob
		// controller will have skipped it if the Job still runs.
		recheck = p.next(now).Sub(now) + 2*time.Second
	}
	return skipped, newest.Name, recheck
}

// overdue says whether a scheduled run that should have finished by now
// (its time plus the starting deadline plus the Job's deadline) came after
// since, the newest successful backup (or the resource's creation): then no
// backup happened as the schedule asked. It returns when the answer can
// next change.
func overdue(p parsedSchedule, since time.Time, window time.Duration, now time.Time) (bool, time.Duration) {
	due := p.next(since)
	if due.IsZero() {
		return false, 0
	}
	if !due.Add(window).After(now) {
		return true, 0
	}
	return false, due.Add(window).Sub(now) + time.Second
}

// runWindow is how long after its scheduled time a run may take to finish:
// the CronJob's starting deadline plus the Job's deadline.
func runWindow(b *dbv1.DatabaseBackup) time.Duration {
	start := defaultStartingDeadlineSeconds
	if t := b.Spec.ScheduledTrigger; t != nil && t.StartingDeadlineSeconds != nil {
		start = *t.StartingDeadlineSeconds
	}
	return time.Duration(start+jobDeadline(b, dbv1.JobTriggerScheduled)) * time.Second
}

// scheduleState is what the schedule says about b now: a run skipped
// because the previous Job still ran, and whether backups are overdue.
type scheduleState struct {
	applies bool // the scheduled trigger is enabled, not suspended, and the spec valid
	skipped time.Time
	blocker string // the Job that was running at skipped
	overdue bool
	since   time.Time // the newest successful backup, or the creation
	next    time.Time
	recheck time.Duration
}

func (r *Reconciler) scheduleState(b *dbv1.DatabaseBackup, ready readiness, jobs []batchv1.Job) scheduleState {
	t := b.Spec.ScheduledTrigger
	if t == nil || !t.Enabled || b.Spec.Suspend || ready.reason != dbv1.ReasonReconciled {
		return scheduleState{}
	}
	p, ok := parseSchedule(t)
	if !ok {
		return scheduleState{}
	}
	now := r.now()
	st := scheduleState{applies: true}
	st.skipped, st.blocker, st.recheck = skippedRun(p, jobs, now)
	st.next = p.next(now)
	if !st.next.IsZero() {
		// nextScheduleTime moves on once that time has passed.
		st.recheck = soonest(st.recheck, st.next.Sub(now)+time.Second)
	}
	st.since = b.CreationTimestamp.Time
	if lb := b.Status.LastBackup; lb != nil && lb.FinishedTime != nil && lb.FinishedTime.After(st.since) {
		st.since = lb.FinishedTime.Time
	}
	var again time.Duration
	st.overdue, again = overdue(p, st.since, runWindow(b), now)
	st.recheck = soonest(st.recheck, again)
	return st
}

// apply writes the state into status: lastSkippedTime and BackupOverdue.
func (s scheduleState) apply(st *dbv1.DatabaseBackupStatus, gen int64) {
	if !s.applies {
		meta.RemoveStatusCondition(&st.Conditions, dbv1.ConditionBackupOverdue)
		st.NextScheduleTime = nil
		return
	}
	if s.next.IsZero() {
		st.NextScheduleTime = nil
	} else {
		st.NextScheduleTime = &metav1.Time{Time: s.next}
	}
	if !s.skipped.IsZero() && (st.LastSkippedTime == nil || st.LastSkippedTime.Time.Before(s.skipped)) {
		st.LastSkippedTime = &metav1.Time{Time: s.skipped}
	}
	if s.overdue {
		setCondition(st, dbv1.ConditionBackupOverdue, "True", dbv1.ReasonBackupsOverdue,
			fmt.Sprintf("no successful backup since %s although the schedule asked for one", s.since.UTC().Format(time.RFC3339)), gen)
	} else {
		setCondition(st, dbv1.ConditionBackupOverdue, "False", dbv1.ReasonBackupsCurrent,
			fmt.Sprintf("newest successful backup (or creation) at %s", s.since.UTC().Format(time.RFC3339)), gen)
	}
}
