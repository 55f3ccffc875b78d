package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/envtest"
)

// exportedSeries maps the name of every series the operator's Metrics can
// export to its labels: a histogram's _bucket (with le), _sum and _count,
// the others by their own name. It reads the collectors NewMetrics
// registers, so a renamed or dropped metric changes it.
func exportedSeries(t testing.TB) map[string][]string {
	t.Helper()
	reg := &capture{}
	if _, err := controller.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	descRE := regexp.MustCompile(`fqName: "([a-z_:]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name and labels of %s", d)
			}
			name, lbls := m[1], strings.Split(m[2], ",")
			if m[2] == "" {
				lbls = nil
			}
			switch c.(type) {
			case *prometheus.HistogramVec, prometheus.Histogram:
				out[name+"_bucket"] = append(slices.Clone(lbls), "le")
				out[name+"_sum"] = lbls
				out[name+"_count"] = lbls
			case *prometheus.SummaryVec, prometheus.Summary:
				out[name] = append(slices.Clone(lbls), "quantile")
				out[name+"_sum"] = lbls
				out[name+"_count"] = lbls
			default:
				out[name] = lbls
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("the operator exports %v: too few to check against", out)
	}
	return out
}

// grafanaVar matches Grafana's variables: $name, ${name} and [[name]].
var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]`)

// varPlaceholder is what a dashboard variable ($namespace) becomes before
// parsing: a word that parses as a label value inside a matcher's quotes,
// and that still says which variable it was.
const varPlaceholder = "grafana_var_"

// substitute replaces Grafana's variables by values PromQL parses: its
// built-in range variables ($__rate_interval, $__interval, $__range, used
// inside [...]) by a duration, the dashboard's own by varPlaceholder and
// the variable's name. A variable anywhere else (a metric name) is left a
// word the exported-series check rejects.
func substitute(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		m := grafanaVar.FindStringSubmatch(v)
		name := m[1] + m[2] + m[3]
		if strings.HasPrefix(name, "__") {
			return "5m"
		}
		return varPlaceholder + name
	})
}

// labelValuesRE is the query of a Grafana template variable that lists a
// label's values: label_values(selector, label).
var labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// query is one PromQL expression of the dashboard and where it is.
type query struct{ where, expr string }

// dashboardQueries walks the dashboard: every panel, the panels of rows
// (collapsed rows hold theirs), every target's expr, and the queries of
// the template variables (label_values(selector, label): the selector).
func dashboardQueries(t testing.TB, raw []byte) []query {
	t.Helper()
	var dash struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var out []query
	var walk func(prefix string, ps []panel)
	walk = func(prefix string, ps []panel) {
		for _, p := range ps {
			where := prefix + fmt.Sprintf("panel %q", p.Title)
			for _, tg := range p.Targets {
				out = append(out, query{where + " target " + tg.RefID, tg.Expr})
			}
			walk(where+" > ", p.Panels)
		}
	}
	walk("", dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		// Grafana writes a variable's query as a string or as an object.
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct{ Query string }
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
			q = obj.Query
		}
		m := labelValuesRE.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
		}
		out = append(out, query{"variable " + v.Name, m[1]})
	}
	return out
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
}

// checkQueries parses each query and returns what is wrong with it: a
// parse error, a series the operator does not export, or a selector of a
// series with a namespace (name) label that does not filter on $namespace
// ($name).
func checkQueries(queries []query, exported map[string][]string) []string {
	p := parser.NewParser(parser.Options{})
	var problems []string
	for _, q := range queries {
		if strings.TrimSpace(q.expr) == "" {
			problems = append(problems, q.where+": no expr")
			continue
		}
		expr, err := p.ParseExpr(substitute(q.expr))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q: %v", q.where, q.expr, err))
			continue
		}
		selectors := 0
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			selectors++
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			lbls, ok := exported[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %q reads %q, which the operator does not export", q.where, q.expr, name))
				return nil
			}
			// Templated on namespace: a series that has the label is
			// filtered by the variable ($namespace's own query lists
			// every namespace).
			if slices.Contains(lbls, "namespace") && q.where != "variable namespace" && !filtersOn(vs, "namespace") {
				problems = append(problems, fmt.Sprintf("%s: %q reads %s without namespace=~\"$namespace\"", q.where, q.expr, name))
			}
			// And on the DatabaseBackup, in panels.
			if slices.Contains(lbls, "name") && !strings.HasPrefix(q.where, "variable ") && !filtersOn(vs, "name") {
				problems = append(problems, fmt.Sprintf("%s: %q reads %s without name=~\"$name\"", q.where, q.expr, name))
			}
			return nil
		})
		if selectors == 0 {
			problems = append(problems, fmt.Sprintf("%s: %q reads no series", q.where, q.expr))
		}
	}
	return problems
}

// filtersOn says whether vs matches label against the dashboard variable
// of the same name (label=~"$label").
func filtersOn(vs *parser.VectorSelector, label string) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == label && m.Type == labels.MatchRegexp && m.Value == varPlaceholder+label {
			return true
		}
	}
	return false
}

func dashboardPath(t testing.TB) string {
	t.Helper()
	root, err := envtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "dbarchive-operator", "dashboards", "dbarchive.json")
}

// TestDashboardReadsExportedSeries: every query of the Grafana dashboard
// (panels, rows' panels, template variables) parses as PromQL, reads only
// series the operator exports, and filters on the namespace and
// DatabaseBackup variables.
func TestDashboardReadsExportedSeries(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath(t))
	if err != nil {
		t.Fatal(err)
	}
	queries := dashboardQueries(t, raw)
	exported := exportedSeries(t)
	for _, p := range checkQueries(queries, exported) {
		t.Error(p)
	}
	// The panels the issue asks for are there, each reading its series:
	// age against the RPO, outcomes, duration, size, compression,
	// verification and its age, restore duration.
	read := map[string]bool{}
	for _, q := range queries {
		for name := range exported {
			if regexp.MustCompile(`\b` + name + `\b`).MatchString(q.expr) {
				read[name] = true
			}
		}
	}
	for _, want := range []string{
		"dbarchive_backup_last_success_timestamp_seconds", "dbarchive_backup_rpo_seconds",
		"dbarchive_backup_last_run_succeeded", "dbarchive_backup_failures_total",
		"dbarchive_backup_last_duration_seconds", "dbarchive_backup_last_stored_bytes", "dbarchive_backup_last_uncompressed_bytes",
		"dbarchive_verification_last_passed", "dbarchive_verification_last_success_timestamp_seconds",
		"dbarchive_restore_duration_seconds", "dbarchive_databaserestore_duration_seconds_bucket",
	} {
		if !read[want] {
			t.Errorf("no panel reads %s", want)
		}
	}
	if len(queries) < 15 {
		t.Errorf("only %d queries found: the walk missed panels", len(queries))
	}
}

// TestDashboardTemplating: the dashboard chooses its data source and
// namespace (and DatabaseBackup) by variables, and every panel and target
// uses the data source variable, so it works on any Grafana.
func TestDashboardTemplating(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct{ Name, Type string } `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Type+":"+v.Name)
	}
	sort.Strings(vars)
	if !slices.Equal(vars, []string{"datasource:datasource", "query:name", "query:namespace"}) {
		t.Errorf("template variables %v", vars)
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" && (p.Datasource == nil || p.Datasource.UID != "${datasource}") {
				t.Errorf("panel %q does not use ${datasource}", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if dash.UID == "" {
		t.Error("no uid: links to the dashboard would change on every import")
	}
}

// TestDashboardCheckerRejects: the checker fails on what it must catch, so
// that a passing TestDashboardReadsExportedSeries means something.
func TestDashboardCheckerRejects(t *testing.T) {
	exported := exportedSeries(t)
	for _, c := range []struct {
		expr, want string
	}{
		{`dbarchive_backup_last_sucess_timestamp_seconds{namespace=~"$namespace"}`, "does not export"},
		{`rate(dbarchive_databaserestore_duration_seconds_bucket_total[$__rate_interval])`, "does not export"},
		{`time() - dbarchive_backup_last_success_timestamp_seconds{namespace=~"$namespace"} > on (namespace, name) up`, `"up"`},
		{`dbarchive_backup_last_success_timestamp_seconds`, `without namespace=~"$namespace"`},
		{`dbarchive_backup_rpo_seconds{namespace=~"$namespace"} - dbarchive_backup_rpo_seconds{name=~"$namespace"}`, `without namespace=~"$namespace"`},
		{`${metric}{namespace=~"$namespace"}`, "does not export"},
		{`dbarchive_backup_rpo_seconds{namespace=~"$namespace"}`, `without name=~"$name"`},
		{`sum(rate(dbarchive_backup_failures_total{namespace=~"$namespace"}[$__rate_interval])`, "unclosed"},
		{`vector(1)`, "reads no series"},
	} {
		problems := checkQueries([]query{{"test", c.expr}}, exported)
		if len(problems) == 0 || !strings.Contains(strings.Join(problems, "\n"), c.want) {
			t.Errorf("%q: problems %q, want one with %q", c.expr, problems, c.want)
		}
	}
	// And the same walk finds a query in a collapsed row's panel.
	raw := []byte(`{"panels":[{"type":"row","title":"r","panels":[{"title":"inner","targets":[{"refId":"A","expr":"dbarchive_no_such_metric"}]}]}]}`)
	problems := checkQueries(dashboardQueries(t, raw), exported)
	if len(problems) != 1 || !strings.Contains(problems[0], `panel "r" > panel "inner"`) {
		t.Errorf("a row's nested panel: problems %q", problems)
	}
}
