package sqlite

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// BenchmarkAppend measures durable appends (synchronous=FULL, default
// Options) to one room of a file store, from one poster and from 8 posting
// at once. Besides ns/op it reports posts/s, the 99th percentile latency of
// one Append in ms, and how many posts shared a transaction.
//
// The goal: at least 2000 posts/s with 8 posters, p99 under 20 ms.
func BenchmarkAppend(b *testing.B) {
	b.Run("Single", func(b *testing.B) { benchAppend(b, 1) })
	b.Run("8Posters", func(b *testing.B) { benchAppend(b, 8) })
}

func benchAppend(b *testing.B, posters int) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "chat.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	text := "a chat message of a typical length, a sentence or two: nothing long, nothing empty."
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for p := range posters {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				m := chat.Message{Room: "lobby", Author: fmt.Sprint("poster-", p), Text: text, Time: t0}
				if _, err := s.Append(b.Context(), m); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	p99 := lat[(len(lat)-1)*99/100]
	st := s.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "posts/s")
	b.ReportMetric(float64(p99)/float64(time.Millisecond), "p99-ms")
	b.ReportMetric(float64(st.Appends)/float64(max(st.Commits, 1)), "posts/commit")
}
