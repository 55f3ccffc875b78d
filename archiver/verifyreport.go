package archiver

import (
	"context"
	"fmt"
	"time"

	"github.com/dbarchive/dbarchive/drivers"
)

// VerifyDir is the directory inside a backup's that holds its drill
// reports. The manifest does not name them: a report is evidence about the
// backup, written after it, not part of it. Prune deletes them with the
// backup, and List does not see them (they are not directly in the
// backup's directory).
const VerifyDir = "verify"

// PutVerifyReport stores a drill report of backup id as
// <prefix>/<id>/verify/<at>.json and returns its key. The backup must
// exist: a report beside nothing would look like the leftover of a backup.
func PutVerifyReport(ctx context.Context, b *drivers.Bucket, prefix, id string, at time.Time, report []byte) (string, error) {
	if _, err := ReadManifest(ctx, b, prefix, id); err != nil {
		return "", err
	}
	key := objectKey(prefix, id, VerifyDir+"/"+at.UTC().Format("20060102T150405.000Z")+".json")
	if err := putSmallObject(ctx, b, key, report); err != nil {
		return "", fmt.Errorf("backup %s: store the drill report: %w", id, err)
	}
	return key, nil
}
