package archiver

import (
	"fmt"
	"strings"
	"time"
)

// BeforePrefix starts a selector that names the newest backup finished at or
// before a time: "before:2026-11-29T03:00:00Z". It is the selector people
// reach for during an incident ("the state before the bad migration"), so it
// is resolved on the recorded end time, not on the id's start time.
const BeforePrefix = "before:"

// selector is a parsed backup selector: "latest" (or ""), an id, or
// before:<RFC 3339 time>.
type selector struct {
	id     string
	before time.Time
}

func (s selector) latest() bool { return s.id == "" && s.before.IsZero() }

func (s selector) String() string {
	switch {
	case s.id != "":
		return s.id
	case !s.before.IsZero():
		return BeforePrefix + s.before.Format(time.RFC3339Nano)
	}
	return "latest"
}

// CheckSelector reports whether s is a backup selector Resolve accepts:
// "latest", a backup id, or before:<RFC 3339 time>. Callers check it before
// opening a repo, so bad input fails fast and never becomes part of an
// object key.
func CheckSelector(s string) error {
	_, err := parseSelector(s)
	return err
}

func parseSelector(s string) (selector, error) {
	switch {
	case s == "" || s == "latest":
		return selector{}, nil
	case strings.HasPrefix(s, BeforePrefix):
		raw := strings.TrimPrefix(s, BeforePrefix)
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return selector{}, fmt.Errorf("%q: the time after %s must be RFC 3339, like 2026-11-29T03:00:00Z", s, BeforePrefix)
		}
		return selector{before: t}, nil
	}
	if _, err := ParseID(s); err != nil {
		return selector{}, fmt.Errorf("%w; or latest, or %s<RFC 3339 time>", err, BeforePrefix)
	}
	return selector{id: s}, nil
}
