// Package memlimit sets the Go runtime's soft memory limit from the memory
// limit of the container the process runs in, so that the garbage
// collector works harder as the heap nears the limit instead of letting
// garbage pile up to twice the live heap (GOGC=100) and the kernel kill the
// process. It is what GOMEMLIMIT would be if Kubernetes could set it to a
// share of limits.memory.
//
// It only reads the cgroup's limit and calls debug.SetMemoryLimit; it never
// changes GOGC, and an explicit GOMEMLIMIT always wins.
package memlimit

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Share is the part of the container's limit the Go runtime may use. The
// rest is for what the runtime does not count: the executable's pages and
// the kernel's own charges to the cgroup.
const Share = 0.9

// Soft is the soft memory limit for a container limit in bytes.
func Soft(containerLimit int64) int64 { return int64(float64(containerLimit) * Share) }

// cgroupFiles hold the memory limit: cgroup v2 (memory.max, "max" when
// none), then v1 (memory.limit_in_bytes, a huge number when none).
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// unlimitedV1 is above any real limit: cgroup v1 reports "no limit" as
// about 2^63 rounded down to a page.
const unlimitedV1 = int64(1) << 62

// ContainerLimit is the memory limit of the process's cgroup in bytes; ok
// is false when there is none or it cannot be read.
func ContainerLimit() (limit int64, ok bool) {
	for _, f := range cgroupFiles {
		if raw, err := os.ReadFile(f); err == nil {
			return parseLimit(string(raw))
		}
	}
	return 0, false
}

func parseLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= unlimitedV1 {
		return 0, false
	}
	return n, true
}

// Apply sets the soft memory limit to Soft(ContainerLimit()) unless
// GOMEMLIMIT is set or there is no container limit. It returns the limit it
// set, 0 when it set none.
func Apply() (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit, ok := ContainerLimit()
	if !ok {
		return 0, nil
	}
	soft := Soft(limit)
	if soft <= 0 {
		return 0, errors.New("memory limit of the container too small")
	}
	debug.SetMemoryLimit(soft)
	return soft, nil
}

// Env is the GOMEMLIMIT value Apply would set for a container limit, for a
// process started with its environment (the operator benchmark).
func Env(containerLimit int64) string { return fmt.Sprintf("%dB", Soft(containerLimit)) }
