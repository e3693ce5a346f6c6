package storetest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// BenchAppend measures s.Append into one room from posters goroutines at
// once, b.N appends in all. It reports posts/s and the 99th percentile
// latency of one Append in milliseconds (p99-ms). The caller owns s.
func BenchAppend(b *testing.B, s chat.Store, posters int) {
	m := chat.Message{Room: "bench", Author: "poster", Text: strings.Repeat("hello, world ", 8), Time: time.Now().UTC()}
	lat := make([][]time.Duration, posters)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for p := range posters {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := s.Append(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "posts/s")
	b.ReportMetric(float64(all[(len(all)-1)*99/100])/float64(time.Millisecond), "p99-ms")
}
