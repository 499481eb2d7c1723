package main

import (
	"io"
	"os"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// hgrmTicks is the number of percentile rows per halving of the distance
// to 100 %, as wrk2 prints them (its --latency output uses 5).
const hgrmTicks = 5

// hgrmScale turns the histogram's nanoseconds into the milliseconds of
// wrk2's .hgrm files, so HdrHistogram's plotter reads both alike.
const hgrmScale = 1e6

// writeHgrm writes h as an HdrHistogram percentile distribution (the
// ".hgrm" text of wrk2 and HdrHistogram's PercentileOutput): columns
// Value (ms), Percentile, TotalCount, 1/(1-Percentile), then a footer with
// the mean, the standard deviation, the max and the total count.
func writeHgrm(w io.Writer, h *hdrhistogram.Histogram) error {
	_, err := h.PercentilesPrint(w, hgrmTicks, hgrmScale)
	return err
}

// writeHgrmFile writes h to path (see writeHgrm).
func writeHgrmFile(path string, h *hdrhistogram.Histogram) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeHgrm(f, h); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
