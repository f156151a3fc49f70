package stack_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// promqlGrouping are the PromQL keywords followed by a list of label names
// in parentheses, which are no metric names.
var promqlGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlKeywords are the other PromQL words that stand alone, and the
// aggregations, which a grouping may separate from their "(".
var promqlKeywords = map[string]bool{
	"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// metricNames returns the metric names a PromQL expression selects, in
// order: the identifiers that are not a function or an aggregation (followed
// by "("), not a keyword, not a label name (in {...} or a grouping's list)
// and not in a string, a range or a number. Grafana's variables ($x, ${x})
// are skipped.
func metricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := skipTo(s, i, '}')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '[':
			end, err := skipTo(s, i, ']')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				end, err := skipTo(s, i, '}')
				if err != nil {
					return nil, err
				}
				i = end
				continue
			}
			for i < len(s) && identChar(s[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			// A number (0.95, 1e3, 0x1f) or a duration (5m).
			for i < len(s) && (identChar(s[i]) || s[i] == '.') {
				i++
			}
		case identChar(c):
			start := i
			for i < len(s) && identChar(s[i]) {
				i++
			}
			word := s[start:i]
			next := i
			for next < len(s) && (s[next] == ' ' || s[next] == '\t' || s[next] == '\n') {
				next++
			}
			paren := next < len(s) && s[next] == '('
			lower := strings.ToLower(word)
			switch {
			case promqlGrouping[lower]:
				if paren {
					end, err := skipTo(s, next, ')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case promqlKeywords[lower], paren:
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names, nil
}

func identChar(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// skipString returns the index after the string literal that starts at i.
func skipString(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d in %q", i, s)
}

// skipTo returns the index after the close that ends what opens at i,
// stepping over string literals: label matchers, ranges and label lists
// do not nest.
func skipTo(s string, i int, close byte) (int, error) {
	for j := i + 1; j < len(s); {
		switch s[j] {
		case close:
			return j + 1, nil
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end
		default:
			j++
		}
	}
	return 0, fmt.Errorf("no %q closes %q at %d in %q", close, s[i], i, s)
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`kjobs_jobs_running`, []string{"kjobs_jobs_running"}},
		{`sum by (function, status) (rate(kjobs_jobs_finished_total{function=~"$function"}[$__rate_interval]))`, []string{"kjobs_jobs_finished_total"}},
		{`histogram_quantile(0.95, sum by (le, function) (rate(a_bucket[5m])))`, []string{"a_bucket"}},
		{`sum(rate(a[5m])) without (instance) / on (function) group_left (status) b`, []string{"a", "b"}},
		{`a > bool 0.5 and b offset 5m unless c or d`, []string{"a", "b", "c", "d"}},
		{`x{l="}{[(\"", m='a b'} + y`, []string{"x", "y"}},
		{`max by (job, instance) (go_goroutines{job=~"$job"})`, []string{"go_goroutines"}},
		{`1e3 * node:cpu:rate5m - 0x1f`, []string{"node:cpu:rate5m"}},
		{`SUM BY (le) (z) / ON() w`, []string{"z", "w"}},
		{`sum(increase(a[${__range}])) / sum(b)`, []string{"a", "b"}},
		{`rate(a[5m:1m] offset -1h)`, []string{"a"}},
		{"sum(\n  a\n) by\n(function)", []string{"a"}},
		{`vector(1)`, nil},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := metricNames(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("metricNames (-want +got):\n%s", diff)
			}
		})
	}
	for _, expr := range []string{`a{l="x}`, `rate(a[5m)`, `sum by (le x`, `a{l="x"`} {
		if got, err := metricNames(expr); err == nil {
			t.Errorf("metricNames(%q) = %v, want an error", expr, got)
		}
	}
}
