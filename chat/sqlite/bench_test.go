package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/hxchat/hxchat/chat/storetest"
)

// BenchmarkAppend measures durable appends (synchronous=FULL, default
// Options) to one room of a file store, from one poster and from 8 posting
// at once: posts/s, p99 latency, and how many posts shared a transaction.
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
	storetest.BenchAppend(b, s, posters)
	st := s.Stats()
	b.ReportMetric(float64(st.Appends)/float64(max(st.Commits, 1)), "posts/commit")
}
