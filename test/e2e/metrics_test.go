package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kjobs/kjobs/internal/testenv"
)

// checkMetrics scrapes url until each series of want, written
// name{k=v,...} with the labels in their names' order, has its value (-1:
// no such series), for a few seconds, as a count follows the store's move
// it counts, which may be the reconciler's, just after a delivery's answer.
// It reports the series that do not, and returns the last scrape.
func checkMetrics(t *testing.T, url string, want map[string]float64) map[string]*dto.MetricFamily {
	t.Helper()
	var families map[string]*dto.MetricFamily
	value := func(series string) float64 {
		name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
		return testenv.MetricValue(families, name, labels)
	}
	settled := func() bool {
		families = testenv.Scrape(t, url)
		for series, v := range want {
			if value(series) != v {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	names := make([]string, 0, len(want))
	for series := range want {
		names = append(names, series)
	}
	slices.Sort(names)
	for _, series := range names {
		if got := value(series); got != want[series] {
			t.Errorf("%s = %v, want %v", series, got, want[series])
		}
	}
	return families
}
