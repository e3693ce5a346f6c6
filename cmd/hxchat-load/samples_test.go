package main

import (
	"math"
	"testing"
	"time"
)

func TestFlat(t *testing.T) {
	st := func(sec float64, rss, g int64) sample {
		return sample{Seconds: sec, serverStats: serverStats{RSSBytes: rss, Goroutines: g}}
	}
	samples := []sample{
		st(0, 100, 10), st(10, 5000, 500), // before the settle time: left out
		st(20, 1000, 100), st(30, 1100, 104), st(40, 900, 96),
		st(50, -1, -1), // a failed scrape: no values, still a sample
	}
	f := flat(samples, 20*time.Second)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if f.SettleSeconds != 20 || f.Samples != 4 || !near(f.RSSMeanBytes, 1000) || !near(f.RSSMaxDevPct, 10) ||
		!near(f.GoroutinesMean, 100) || !near(f.GoroutinesMaxDevPct, 4) {
		t.Errorf("flat = %+v, want settle 20s, 4 samples, RSS 1000 ±10%%, goroutines 100 ±4%%", f)
	}
	if f := flat(samples, time.Minute); f.Samples != 0 || f.RSSMaxDevPct != -1 || f.GoroutinesMaxDevPct != -1 {
		t.Errorf("flat with no sample after the settle time = %+v, want deviations -1", f)
	}
}
