//go:build ignore

// Command summary turns gremlins' JSON reports into one line per package:
// killed, survived, not covered, timed out, not viable, the equivalent
// mutants left out, and the score killed / (killed + survived). The
// survivors are listed below with their source line, so the next test to
// write is plain.
//
//	go run hack/mutation/summary.go -equivalents hack/mutation/equivalent.txt PKG=REPORT.json...
//
// A REPORT ending in .log is gremlins' progress output instead, for a run
// stopped before it wrote its JSON report.
//
// An equivalent mutant (one no test can tell from the original: a log
// line's condition, a buffer's capacity that only changes speed) is listed
// in the equivalents file as
//
//	FILE:LINE:COL TYPE | CODE | REASON
//
// FILE relative to the module root, CODE the source line with its
// indentation trimmed. A mutant matches on FILE, COL, TYPE and CODE, not on
// LINE, so the list survives edits elsewhere in the file; LINE only helps
// the reader. An entry that matches no mutant is reported as stale.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// report is the part of gremlins' JSON output (-o) that is read.
type report struct {
	Files []reportFile `json:"files"`
}

type reportFile struct {
	Name      string     `json:"file_name"`
	Mutations []mutation `json:"mutations"`
}

type mutation struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

type key struct {
	file, typ, code string
	col             int
}

type equivalent struct {
	key
	line    int
	reason  string
	matched int
}

func main() {
	eqPath := flag.String("equivalents", "", "file of equivalent mutants")
	flag.Parse()
	eqs, err := readEquivalents(*eqPath)
	if err != nil {
		fail(err)
	}
	byKey := map[key]*equivalent{}
	for _, e := range eqs {
		byKey[e.key] = e
	}
	sources := map[string][]string{}
	codeAt := func(file string, line int) string {
		lines, ok := sources[file]
		if !ok {
			data, err := os.ReadFile(file)
			if err != nil {
				fail(err)
			}
			lines = strings.Split(string(data), "\n")
			sources[file] = lines
		}
		if line < 1 || line > len(lines) {
			return ""
		}
		return strings.TrimSpace(lines[line-1])
	}

	fmt.Printf("%-12s %7s %8s %11s %9s %10s %10s %7s\n", "package", "killed", "survived", "not covered", "timed out", "not viable", "equivalent", "score")
	var survivors []string
	// Reports of the same package (a run in parts, MUTATION_FILES) add up.
	var pkgs []string
	counts := map[string]map[string]int{}
	seen := map[string]bool{} // files some report has mutants of
	for _, arg := range flag.Args() {
		pkg, path, ok := strings.Cut(arg, "=")
		if !ok {
			fail(fmt.Errorf("argument %q: want PKG=REPORT.json", arg))
		}
		data, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		var r report
		if strings.HasSuffix(path, ".log") {
			r = parseLog(data)
		} else if err := json.Unmarshal(data, &r); err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		if counts[pkg] == nil {
			pkgs = append(pkgs, pkg)
			counts[pkg] = map[string]int{}
		}
		counts := counts[pkg]
		for _, f := range r.Files {
			file := filepath.ToSlash(filepath.Join(pkg, f.Name))
			seen[file] = true
			for _, m := range f.Mutations {
				code := codeAt(file, m.Line)
				if e := byKey[key{file: file, typ: m.Type, code: code, col: m.Column}]; e != nil {
					e.matched++
					counts["EQUIVALENT"]++
					continue
				}
				counts[m.Status]++
				if m.Status == "LIVED" {
					survivors = append(survivors, fmt.Sprintf("%s:%d:%d %s | %s", file, m.Line, m.Column, m.Type, code))
				}
			}
		}
	}
	for _, pkg := range pkgs {
		counts := counts[pkg]
		score := "-"
		if n := counts["KILLED"] + counts["LIVED"]; n > 0 {
			score = strconv.FormatFloat(100*float64(counts["KILLED"])/float64(n), 'f', 1, 64) + "%"
		}
		fmt.Printf("%-12s %7d %8d %11d %9d %10d %10d %7s\n", pkg, counts["KILLED"], counts["LIVED"], counts["NOT COVERED"],
			counts["TIMED OUT"], counts["NOT VIABLE"], counts["EQUIVALENT"], score)
	}
	if len(survivors) > 0 {
		sort.Strings(survivors)
		fmt.Printf("\nsurvivors (%d):\n", len(survivors))
		for _, s := range survivors {
			fmt.Println("  " + s)
		}
	}
	for _, e := range eqs {
		if e.matched == 0 && seen[e.file] {
			fmt.Printf("stale equivalent (matches no mutant): %s:%d:%d %s | %s\n", e.file, e.line, e.col, e.typ, e.code)
		}
	}
}

// logLine is one mutant in gremlins' progress output.
var logLine = regexp.MustCompile(`^\s*(KILLED|LIVED|NOT COVERED|TIMED OUT|NOT VIABLE|SKIPPED) (\w+) at ([^:]+):(\d+):(\d+)\s*$`)

// parseLog reads the mutants from gremlins' progress output instead of its
// JSON report, for a run stopped before the end (the report is written
// only at the end).
func parseLog(data []byte) report {
	var r report
	files := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		i, ok := files[m[3]]
		if !ok {
			i = len(r.Files)
			files[m[3]] = i
			r.Files = append(r.Files, reportFile{Name: m[3]})
		}
		lineNo, _ := strconv.Atoi(m[4])
		col, _ := strconv.Atoi(m[5])
		r.Files[i].Mutations = append(r.Files[i].Mutations, mutation{Type: m[2], Status: m[1], Line: lineNo, Column: col})
	}
	return r
}

// readEquivalents parses the equivalents file; blank lines and lines
// starting with # are comments.
func readEquivalents(path string) ([]*equivalent, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*equivalent
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, " | ", 3)
		if len(fields) != 3 || strings.TrimSpace(fields[2]) == "" {
			return nil, fmt.Errorf("%s:%d: want FILE:LINE:COL TYPE | CODE | REASON", path, n)
		}
		pos, typ, ok := strings.Cut(strings.TrimSpace(fields[0]), " ")
		parts := strings.Split(pos, ":")
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("%s:%d: want FILE:LINE:COL TYPE first", path, n)
		}
		lineNo, err1 := strconv.Atoi(parts[1])
		col, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: bad line or column in %q", path, n, pos)
		}
		out = append(out, &equivalent{
			key:    key{file: parts[0], typ: strings.TrimSpace(typ), code: strings.TrimSpace(fields[1]), col: col},
			line:   lineNo,
			reason: strings.TrimSpace(fields[2]),
		})
	}
	return out, s.Err()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "summary:", err)
	os.Exit(1)
}
