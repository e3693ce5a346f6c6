package redis

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// BenchmarkAppend measures stored (and published) posts per second into one
// room and the 99th percentile latency of an Append, with one poster and
// with eight concurrent ones, on a local redis-server without persistence.
func BenchmarkAppend(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	b.Run("Single", func(b *testing.B) { benchAppend(b, srv, 1) })
	b.Run("8Posters", func(b *testing.B) { benchAppend(b, srv, 8) })
}

func benchAppend(b *testing.B, srv *redistest.Server, posters int) {
	s := open(b, srv.URL(), Options{KeyPrefix: freshPrefix()})
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
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "posts/s")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
}
