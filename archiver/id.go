package archiver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// A backup id is the UTC start time to the millisecond followed by random
// hex: ids sort by time as plain strings (every store lists keys in that
// order), and two backups started in the same millisecond still differ.
const idTimeLayout = "20060102T150405.000Z"

var idPattern = regexp.MustCompile(`^(\d{8}T\d{6}\.\d{3}Z)-([0-9a-f]{8})$`)

// NewID returns a fresh backup id for a backup started at t.
func NewID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format(idTimeLayout) + "-" + hex.EncodeToString(b[:])
}

// ParseID checks an id's form and returns the time in it.
func ParseID(id string) (time.Time, error) {
	m := idPattern.FindStringSubmatch(id)
	if m == nil {
		return time.Time{}, fmt.Errorf("%q is not a backup id (want like 20260102T150405.000Z-1a2b3c4d)", id)
	}
	t, err := time.Parse(idTimeLayout, m[1])
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a backup id: %w", id, err)
	}
	return t, nil
}
