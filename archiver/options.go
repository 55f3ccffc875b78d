package archiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/dbarchive/dbarchive/drivers"
)

// Defaults, chosen by measurement (README, "Speed and memory"): 5 MiB parts
// (the smallest S3 and IBM COS accept) with 4 in flight keep the pipeline's
// buffers at 25 MiB; on two cores a 1 GiB stream backs up as fast as with
// 8 or 16 MiB parts (zstd bounds it), and peak RSS is 15 MB lower than with
// 8 MiB parts.
const (
	DefaultPartSize    = 5 << 20
	DefaultConcurrency = 4
	DefaultLevel       = 3
)

// RetryPolicy governs retries of one storage call. Only errors of class
// Transient are retried.
type RetryPolicy struct {
	// MaxAttempts is the number of tries per call, the first included.
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the exponential, jittered pause.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxElapsed caps the time spent on one call across its retries.
	MaxElapsed time.Duration
}

// DefaultRetry rides out a few seconds of throttling or a restarting
// endpoint without letting one stuck part hold a backup for long.
var DefaultRetry = RetryPolicy{MaxAttempts: 6, InitialBackoff: 250 * time.Millisecond, MaxBackoff: 20 * time.Second, MaxElapsed: 5 * time.Minute}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetry.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultRetry.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultRetry.MaxBackoff
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultRetry.MaxElapsed
	}
	return p
}

// retry runs op until it succeeds, fails with a non-Transient error, or the
// policy runs out. what names the call in logs.
func retry(ctx context.Context, p RetryPolicy, log *slog.Logger, what string, op func(context.Context) error) error {
	p = p.withDefaults()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = p.InitialBackoff
	bo.MaxInterval = p.MaxBackoff
	bo.RandomizationFactor = 0.5
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		err := op(ctx)
		if err != nil && drivers.CodeOf(err) != drivers.Transient {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(bo),
		backoff.WithMaxTries(uint(p.MaxAttempts)),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
		backoff.WithNotify(func(err error, wait time.Duration) {
			log.Warn("retrying after a transient storage error", "call", what, "attempt", attempt, "wait", wait.Round(time.Millisecond), "error", err)
		}),
	)
	if err != nil && attempt > 1 && drivers.CodeOf(err) == drivers.Transient {
		return fmt.Errorf("%s: gave up after %d attempts: %w", what, attempt, err)
	}
	return err
}

// Progress counts a running backup or restore. The pipeline updates it; a
// display polls it. All fields are safe to read concurrently.
type Progress struct {
	// SourceBytes: uncompressed bytes read from the source (backup) or
	// written to the sink (restore).
	SourceBytes atomic.Int64
	// StoredBytes: compressed bytes uploaded (backup) or downloaded (restore).
	StoredBytes atomic.Int64
	// Parts: parts uploaded or chunks downloaded.
	Parts atomic.Int64
}

// objectKey joins a repo prefix, a backup id and a file name.
func objectKey(prefix, id, name string) string {
	return backupDir(prefix, id) + name
}

// backupDir is the key prefix of one backup's objects, ending in a slash.
func backupDir(prefix, id string) string {
	return prefixDir(prefix) + id + "/"
}

// prefixDir is the key prefix under which a repo's backups live: the repo
// prefix with exactly one trailing slash, or "" for the bucket's root.
func prefixDir(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

// errStalled is the cause reported when the source produced nothing for
// longer than the stall timeout.
var errStalled = errors.New("the source produced no output for longer than the stall timeout")
