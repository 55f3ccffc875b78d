package dumpscan_test

import (
	"bytes"
	"testing"

	"github.com/dbarchive/dbarchive/internal/testgen"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

// BenchmarkScanner is each scanner alone on 32 MiB of rows, in 1 MiB
// writes: its throughput on one core.
func BenchmarkScanner(b *testing.B) {
	pool := testgen.Pool(1)
	pool = pool[:bytes.LastIndexByte(pool, '\n')+1] // whole rows
	custom := append(append(testgen.PGCustomHeader([]string{"public.bench"}, false), testgen.PGCustomBlockStart(1)...), testgen.PGCustomPool(pool)...)
	custom = append(custom, testgen.PGCustomBlockEnd()...)
	plain := append(append([]byte("COPY public.bench (a) FROM stdin;\n"), pool...), "\\.\n-- PostgreSQL database dump complete\n"...)
	for _, tc := range []struct {
		name string
		mk   func() dumpscan.Scanner
		data []byte
	}{
		{"custom", dumpscan.NewPostgresCustom, custom},
		{"plain", dumpscan.NewPostgresPlain, plain},
		{"mariadb", func() dumpscan.Scanner { return dumpscan.NewMariaDB("bench") },
			append(testgen.MariaDBInserts(pool), "-- Dump completed on 2026-11-29 10:00:00\n"...)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				s := tc.mk()
				for rest := tc.data; len(rest) > 0; {
					n := min(len(rest), 1<<20)
					if _, err := s.Write(rest[:n]); err != nil {
						b.Fatal(err)
					}
					rest = rest[n:]
				}
				if _, err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
