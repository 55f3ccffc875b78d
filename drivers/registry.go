package drivers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Factory opens a Bucket from a repo's Config. It validates the fields its
// type uses and returns a *ConfigError naming the first bad one.
type Factory func(ctx context.Context, cfg Config) (Bucket, error)

var (
	tableMu sync.RWMutex
	table   = map[string]Factory{}
)

// Register makes a driver available under a repo type. It panics when the
// type is empty, the factory nil, or the type already registered: those are
// programming errors found at start-up.
func Register(repoType string, f Factory) {
	tableMu.Lock()
	defer tableMu.Unlock()
	if repoType == "" {
		panic("drivers: Register with an empty type")
	}
	if f == nil {
		panic("drivers: Register of type " + repoType + " with a nil factory")
	}
	if _, dup := table[repoType]; dup {
		panic("drivers: Register called twice for type " + repoType)
	}
	table[repoType] = f
}

// Types returns the registered repo types, sorted.
func Types() []string {
	tableMu.RLock()
	defer tableMu.RUnlock()
	out := make([]string, 0, len(table))
	for t := range table {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Open opens the Bucket for cfg with the driver registered for cfg.Type.
func Open(ctx context.Context, cfg Config) (Bucket, error) {
	if strings.TrimSpace(cfg.Name) == "" {
		return nil, cfg.Invalid("name", "is required")
	}
	tableMu.RLock()
	f, ok := table[cfg.Type]
	tableMu.RUnlock()
	if !ok {
		if cfg.Type == "" {
			return nil, cfg.Invalid("type", "is required; known types: %s", strings.Join(Types(), ", "))
		}
		return nil, cfg.Invalid("type", "unknown type %q; known types: %s", cfg.Type, strings.Join(Types(), ", "))
	}
	b, err := f(ctx, cfg)
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		return nil, err // it names the repo already
	case err != nil:
		return nil, fmt.Errorf("open repo %q: %w", cfg.Name, err)
	}
	return b, nil
}
