package chat_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/storetest"
)

// renderBench renders a fragment of about 100 bytes, like the real one.
func renderBench(m chat.Message) ([]byte, error) {
	return fmt.Appendf(nil, `<li id="msg-%d" class="msg"><b>%s</b> <time>%s</time> %s</li>`,
		m.Seq, m.Author, m.Time.Format("15:04"), m.Text), nil
}

// countSink is a Sink that always accepts: it only counts what it is
// offered, and marks round done at every posts-th event.
type countSink struct {
	n     atomic.Int64
	posts int64
	round *sync.WaitGroup
}

func (s *countSink) Offer(*chat.Event) bool {
	if n := s.n.Add(1); s.round != nil && n > 0 && n%s.posts == 0 {
		s.round.Done()
	}
	return true
}

func (s *countSink) End(error) {}

// benchFollow follows room into s and waits until the follower is live:
// a first message reaches it (and is not counted), so every message the
// benchmark posts is handed on by the fan-out, not read back from the
// store.
func benchFollow(b *testing.B, h *chat.Hub, room string, sinks []*countSink) {
	b.Helper()
	for _, s := range sinks {
		s.n.Store(-1)
		f, err := h.Follow(b.Context(), room, chat.Cursor{}, false, s)
		if err != nil {
			b.Fatalf("Follow: %v", err)
		}
		b.Cleanup(f.Close)
	}
	if _, err := h.Post(b.Context(), room, chat.Author{Name: "warm-up"}, "warm-up"); err != nil {
		b.Fatalf("Post: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for _, s := range sinks {
		for s.n.Load() < 0 {
			if time.Now().After(deadline) {
				b.Fatal("a follower did not go live within a minute")
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// BenchmarkFanout100x1000 posts 1000 messages per iteration into a room of
// 100 followers, each into a sink that takes every event at once, and
// waits until every follower has handed on every message.
func BenchmarkFanout100x1000(b *testing.B) {
	const (
		followers = 100
		posts     = 1000
	)
	var overflows atomic.Int32
	h := chat.NewHub(chat.NewMemoryStore(0), chat.HubOptions{
		// Queues hold a whole iteration: measure fan-out, not overflows.
		QueueSize:  posts,
		Render:     renderBench,
		OnOverflow: func(string, int) { overflows.Add(1) },
	})
	ctx := b.Context()
	var round sync.WaitGroup // one Done per follower per iteration
	sinks := make([]*countSink, followers)
	for i := range sinks {
		sinks[i] = &countSink{posts: posts, round: &round}
	}
	benchFollow(b, h, "lobby", sinks)
	text := "the quick brown fox jumps over the lazy dog"
	b.ReportAllocs()
	iterations := 0
	for b.Loop() {
		iterations++
		round.Add(followers)
		for range posts {
			if _, err := h.Post(ctx, "lobby", chat.Author{Name: "alice", Key: "a11ce0000000"}, text); err != nil {
				b.Fatalf("Post: %v", err)
			}
		}
		if !waitTimeout(&round, time.Minute) {
			b.Fatalf("followers did not receive all %d messages within a minute (%d overflows)", posts, overflows.Load())
		}
	}
	if n := overflows.Load(); n != 0 {
		b.Fatalf("%d followers overflowed", n)
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(iterations*posts*followers)/secs, "deliveries/s")
	b.ReportMetric(float64(iterations*posts)/secs, "posts/s")
}

// waitTimeout waits for wg, reporting false if it took longer than d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// BenchmarkPost is one Post (validate, append, render, hand to the
// follower) into a room with one follower whose sink takes every event at
// once, so every Post renders and hands on for real and the follower never
// falls behind.
func BenchmarkPost(b *testing.B) {
	var overflows atomic.Int32
	h := chat.NewHub(chat.NewMemoryStore(0), chat.HubOptions{
		Render:     renderBench,
		OnOverflow: func(string, int) { overflows.Add(1) },
	})
	s := &countSink{}
	benchFollow(b, h, "lobby", []*countSink{s})
	ctx := b.Context()
	b.ReportAllocs()
	var posted int64
	for b.Loop() {
		if _, err := h.Post(ctx, "lobby", chat.Author{Name: "alice", Key: "a11ce0000000"}, "the quick brown fox jumps over the lazy dog"); err != nil {
			b.Fatalf("Post: %v", err)
		}
		posted++
	}
	b.ReportMetric(float64(posted)/b.Elapsed().Seconds(), "posts/s")
	if got := s.n.Load(); got != posted || overflows.Load() != 0 {
		b.Fatalf("the follower received %d of %d messages (%d overflows)", got, posted, overflows.Load())
	}
}

// BenchmarkMemoryAppend appends to a MemoryStore into one room from one
// poster and from 8 at once: posts/s and p99 latency.
func BenchmarkMemoryAppend(b *testing.B) {
	b.Run("Single", func(b *testing.B) { storetest.BenchAppend(b, chat.NewMemoryStore(0), 1) })
	b.Run("8Posters", func(b *testing.B) { storetest.BenchAppend(b, chat.NewMemoryStore(0), 8) })
}
