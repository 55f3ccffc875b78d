package postgres

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"

	"github.com/dbarchive/dbarchive/sources"
)

var _ sources.Querier = (*Source)(nil)

// Query runs sql in the target database with psql and returns the rows.
// psql's CSV output quotes values that hold commas, quotes or line breaks,
// so any value comes back whole.
func (s *Source) Query(ctx context.Context, sql string) ([][]string, error) {
	c, err := s.command("psql", "--no-psqlrc", "--quiet", "--csv", "--tuples-only", "--set=ON_ERROR_STOP=1", "--file=-")
	if err != nil {
		return nil, err
	}
	c.Env = append(c.Env, "PGDATABASE="+s.db)
	var out strings.Builder
	if err := c.Run(ctx, strings.NewReader(sql+"\n;\n"), &out); err != nil {
		return nil, fmt.Errorf("postgres target %s: %w", s.Describe(), err)
	}
	r := csv.NewReader(strings.NewReader(out.String()))
	r.FieldsPerRecord = -1
	var rows [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("postgres target %s: reading psql's output: %w", s.Describe(), err)
		}
		rows = append(rows, rec)
	}
}

// Drop drops the target database, even when ctx has been cancelled (a
// drill's cleanup runs after a SIGTERM too).
func (s *Source) Drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.maintenance(ctx, `DROP DATABASE IF EXISTS :"target" WITH (FORCE);`); err != nil {
		return fmt.Errorf("postgres target %s: dropping the database: %w", s.Describe(), err)
	}
	return nil
}
