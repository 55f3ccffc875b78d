package archiver

// TEMPORARY until main's "restore library:" commit is merged; deleted then.

import (
	"fmt"
	"strings"
	"time"
)

func CheckSelector(s string) error {
	switch {
	case s == "latest":
		return nil
	case strings.HasPrefix(s, "before:"):
		_, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(s, "before:"))
		return err
	}
	_, err := ParseID(s)
	if err != nil {
		return fmt.Errorf("%w, or latest, or before:<RFC 3339 time>", err)
	}
	return nil
}
