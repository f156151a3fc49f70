package ui

import (
	"fmt"

	"github.com/kjobs/kjobs/internal/job"
)

// chart is a bar chart of jobs ended per minute, drawn as inline SVG by
// the overview's template: one bar per minute, failed stacked on
// succeeded, scaled to the busiest minute. It needs no script, which the
// Content-Security-Policy would refuse anyway.
type chart struct {
	Width, Height int
	// Top is the y of the chart's top line, Base of its base line.
	Top, Base int
	// Max is the count the top line stands for.
	Max  int64
	Bars []bar
	// From and To label the first and last minute.
	From, To string
}

// bar is one minute: two stacked rectangles and a tooltip.
type bar struct {
	X, W                   int
	SucceededY, SucceededH int
	FailedY, FailedH       int
	Title                  string
}

// The chart's geometry in SVG units; the stylesheet scales it to the page.
const (
	chartWidth  = 720
	chartHeight = 180
	chartTop    = 12
	chartBase   = 156
	barStep     = chartWidth / 60
	barGap      = 2
)

func newChart(minutes []job.Minute) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Top: chartTop, Base: chartBase, Max: 1}
	for _, m := range minutes {
		c.Max = max(c.Max, m.Succeeded+m.Failed)
	}
	if len(minutes) > 0 {
		c.From = minutes[0].At.UTC().Format("15:04")
		c.To = minutes[len(minutes)-1].At.UTC().Format("15:04") + " UTC"
	}
	scale := func(n int64) int { return int(n * int64(chartBase-chartTop) / c.Max) }
	for i, m := range minutes {
		sh, fh := scale(m.Succeeded), scale(m.Succeeded+m.Failed)-scale(m.Succeeded)
		c.Bars = append(c.Bars, bar{
			X: i * barStep, W: barStep - barGap,
			SucceededY: chartBase - sh, SucceededH: sh,
			FailedY: chartBase - sh - fh, FailedH: fh,
			Title: fmt.Sprintf("%s UTC: %d succeeded, %d failed", m.At.UTC().Format("15:04"), m.Succeeded, m.Failed),
		})
	}
	return c
}
