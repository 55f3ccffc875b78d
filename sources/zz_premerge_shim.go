package sources

// TEMPORARY until main's "restore library:" commit is merged; deleted then.

import (
	"fmt"
	"strings"
)

type TargetNotEmptyError struct {
	Target string
	Tables []string
}

func (e *TargetNotEmptyError) Error() string {
	return fmt.Sprintf("target %s is not empty (%s)", e.Target, strings.Join(e.Tables, ", "))
}
