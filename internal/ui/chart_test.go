package ui

import (
	"testing"
	"time"

	"github.com/kjobs/kjobs/internal/job"
)

// TestChart checks the bars' geometry: stacked, failed on succeeded, scaled
// so that the busiest minute reaches the top line, and nothing drawn for an
// empty minute.
func TestChart(t *testing.T) {
	at := time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)
	full := chartBase - chartTop
	tests := []struct {
		name    string
		minutes []job.Minute
		max     int64
		// heights are each bar's succeeded and failed heights.
		heights [][2]int
	}{
		{"an idle hour", []job.Minute{{At: at}, {At: at.Add(time.Minute)}}, 1, [][2]int{{0, 0}, {0, 0}}},
		{"the busiest minute fills the chart", []job.Minute{{At: at, Succeeded: 3, Failed: 1}, {At: at.Add(time.Minute), Succeeded: 2}},
			4, [][2]int{{full * 3 / 4, full - full*3/4}, {full * 2 / 4, 0}}},
		{"failures alone", []job.Minute{{At: at, Failed: 2}}, 2, [][2]int{{0, full}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newChart(tc.minutes)
			if c.Max != tc.max || len(c.Bars) != len(tc.heights) {
				t.Fatalf("max %d with %d bars, want %d with %d", c.Max, len(c.Bars), tc.max, len(tc.heights))
			}
			for i, b := range c.Bars {
				if b.SucceededH != tc.heights[i][0] || b.FailedH != tc.heights[i][1] {
					t.Errorf("bar %d: heights %d and %d, want %d and %d", i, b.SucceededH, b.FailedH, tc.heights[i][0], tc.heights[i][1])
				}
				if b.SucceededY+b.SucceededH != chartBase || b.FailedY+b.FailedH != b.SucceededY {
					t.Errorf("bar %d is not stacked on the base line: %+v", i, b)
				}
			}
			if got, want := c.From, tc.minutes[0].At.Format("15:04"); got != want {
				t.Errorf("From %q, want %q", got, want)
			}
		})
	}
}
