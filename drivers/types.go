package drivers

import (
	"context"
	"time"

	"github.com/dbarchive/dbarchive/drivers/driver"
)

// The value types of the driver contract, under the names callers use.
type (
	// ObjectInfo describes one stored object.
	ObjectInfo = driver.ObjectInfo
	// PendingUpload identifies an upload begun and not completed or aborted.
	PendingUpload = driver.PendingUpload
	// Limits are a driver's multipart limits. A caller sizing parts for a
	// stream of unknown length keeps MaxParts x part size above the largest
	// stream it must accept.
	Limits = driver.Limits
)

// AbortTimeout bounds the cleanup an Abort or AbortUpload does on its
// detached context.
const AbortTimeout = 2 * time.Minute

// CleanupContext returns a context for cleanup work that must run even when
// ctx was cancelled: it keeps ctx's values, drops its cancellation, and ends
// after AbortTimeout.
func CleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), AbortTimeout)
}
