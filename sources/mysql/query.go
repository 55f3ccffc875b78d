package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/dbarchive/dbarchive/sources"
)

var _ sources.Querier = (*Source)(nil)

// Query runs sql in the target database with the client in batch mode:
// one line a row, tab-separated, with tabs, line breaks and backslashes in
// values escaped (unescaped here) and NULL as the text NULL (returned as "").
func (s *Source) Query(ctx context.Context, sql string) ([][]string, error) {
	c, err := s.command(tool(clientTools), "--batch", "--skip-column-names", "--database="+s.db, "--execute="+sql)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	if err := c.Run(ctx, nil, &out); err != nil {
		return nil, fmt.Errorf("mysql target %s: %w", s.Describe(), err)
	}
	var rows [][]string
	unescape := strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\n`, "\n", `\0`, "\x00")
	for line := range strings.Lines(out.String()) {
		fields := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		for i, f := range fields {
			if f == "NULL" {
				fields[i] = ""
				continue
			}
			fields[i] = unescape.Replace(f)
		}
		rows = append(rows, fields)
	}
	return rows, nil
}

// Drop drops the target database, even when ctx has been cancelled.
func (s *Source) Drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupLimit)
	defer cancel()
	if _, err := s.runSQL(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(s.db)); err != nil {
		return fmt.Errorf("mysql target %s: dropping the database: %w", s.Describe(), err)
	}
	return nil
}
