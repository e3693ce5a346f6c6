package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// sample is the server's RSS and goroutines at Seconds after posting began.
type sample struct {
	Seconds float64 `json:"t_s"`
	serverStats
}

// sampler scrapes the server's /metrics every -sample from start until
// until ends and returns the samples, first among them first (the one
// taken just before posting began, at 0 s). Each scrape is bounded by ctx,
// not by until, so that the last one is not cut off by the end of posting.
func (l *loader) sampler(ctx, until context.Context, start time.Time, first serverStats) []sample {
	out := []sample{{Seconds: 0, serverStats: first}}
	tk := time.NewTicker(l.o.sample)
	defer tk.Stop()
	for {
		select {
		case <-until.Done():
			return out
		case <-tk.C:
			st := l.scrape(ctx)
			out = append(out, sample{Seconds: time.Since(start).Seconds(), serverStats: st})
		}
	}
}

// flatness is how far the server's RSS and goroutines strayed from their
// mean over the samples taken after the settle time: the soak passes when
// both stay within ±5 %. A deviation of -1 means no sample had the value.
type flatness struct {
	SettleSeconds       float64 `json:"settle_s"`
	Samples             int     `json:"samples"`
	RSSMeanBytes        float64 `json:"rss_mean_bytes"`
	RSSMaxDevPct        float64 `json:"rss_max_dev_pct"`
	GoroutinesMean      float64 `json:"goroutines_mean"`
	GoroutinesMaxDevPct float64 `json:"goroutines_max_dev_pct"`
}

// flat computes the flatness of the samples taken at settle or later.
func flat(samples []sample, settle time.Duration) flatness {
	f := flatness{SettleSeconds: settle.Seconds()}
	var rss, gor []float64
	for _, s := range samples {
		if s.Seconds < settle.Seconds() {
			continue
		}
		f.Samples++
		if s.RSSBytes >= 0 {
			rss = append(rss, float64(s.RSSBytes))
		}
		if s.Goroutines >= 0 {
			gor = append(gor, float64(s.Goroutines))
		}
	}
	f.RSSMeanBytes, f.RSSMaxDevPct = meanAndMaxDev(rss)
	f.GoroutinesMean, f.GoroutinesMaxDevPct = meanAndMaxDev(gor)
	return f
}

// meanAndMaxDev returns the mean of xs and the largest distance of one of
// them from it, in percent of the mean; -1 for no values (or a zero mean).
func meanAndMaxDev(xs []float64) (mean, maxDevPct float64) {
	if len(xs) == 0 {
		return 0, -1
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if mean == 0 {
		return 0, -1
	}
	for _, x := range xs {
		maxDevPct = max(maxDevPct, math.Abs(x-mean)/mean*100)
	}
	return mean, maxDevPct
}

func (f flatness) String() string {
	pct := func(p float64) string {
		if p < 0 {
			return "n/a"
		}
		return fmt.Sprintf("±%.1f %%", p)
	}
	return fmt.Sprintf("RSS mean %.1f MiB, max deviation %s; goroutines mean %.0f, max deviation %s (%d samples from %gs of posting on)",
		f.RSSMeanBytes/(1<<20), pct(f.RSSMaxDevPct), f.GoroutinesMean, pct(f.GoroutinesMaxDevPct), f.Samples, f.SettleSeconds)
}

// loadCPU is the human form of the tool's own CPU use.
func loadCPU(r report) string {
	if r.LoadCPUSeconds < 0 {
		return "n/a"
	}
	if r.LoadCPUPerDeliv < 0 {
		return fmt.Sprintf("%.2fs", r.LoadCPUSeconds)
	}
	return fmt.Sprintf("%.2fs, %.2f µs per delivery (on this machine it competes with the server)", r.LoadCPUSeconds, r.LoadCPUPerDeliv)
}
