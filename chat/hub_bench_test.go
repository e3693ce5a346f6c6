package chat_test

import (
	"fmt"
	"runtime"
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

// BenchmarkFanout100x1000 posts 1000 messages per iteration into a room of
// 100 subscribers, each draining its queue in its own goroutine, and waits
// until every subscriber has received every message.
func BenchmarkFanout100x1000(b *testing.B) {
	const (
		subscribers = 100
		posts       = 1000
	)
	var dropped atomic.Int32
	h := chat.NewHub(chat.NewMemoryStore(0), chat.HubOptions{
		// Queues hold a whole iteration: measure fan-out, not drops.
		QueueSize: posts,
		Render:    renderBench,
		OnDrop:    func(string, int) { dropped.Add(1) },
	})
	ctx := b.Context()
	var (
		round   sync.WaitGroup // one Done per subscriber per iteration
		readers sync.WaitGroup
	)
	b.Cleanup(readers.Wait) // after b.Context is cancelled
	for range subscribers {
		sub := h.Subscribe("lobby")
		readers.Go(func() {
			defer sub.Close()
			n := 0
			for {
				select {
				case <-sub.C():
					if n++; n%posts == 0 {
						round.Done()
					}
				case <-sub.Dropped():
					return
				case <-ctx.Done():
					return
				}
			}
		})
	}
	text := "the quick brown fox jumps over the lazy dog"
	b.ReportAllocs()
	iterations := 0
	for b.Loop() {
		iterations++
		round.Add(subscribers)
		for range posts {
			if _, err := h.Post(ctx, "lobby", chat.Author{Name: "alice", Key: "a11ce0000000"}, text); err != nil {
				b.Fatalf("Post: %v", err)
			}
		}
		if !waitTimeout(&round, time.Minute) {
			b.Fatalf("subscribers did not receive all %d messages within a minute (%d dropped)", posts, dropped.Load())
		}
	}
	if n := dropped.Load(); n != 0 {
		b.Fatalf("%d subscribers dropped", n)
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(iterations*posts*subscribers)/secs, "deliveries/s")
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

// BenchmarkPost is one Post (validate, append, render, queue) into a room
// with one subscriber draining its queue in another goroutine. Posting
// outruns one reader, which the hub answers by dropping it; so the benchmark
// pauses whenever the reader is half a queue behind, keeping it subscribed
// and every Post rendering and queueing for real.
func BenchmarkPost(b *testing.B) {
	const queue = chat.DefaultQueueSize
	h := chat.NewHub(chat.NewMemoryStore(0), chat.HubOptions{QueueSize: queue, Render: renderBench})
	sub := h.Subscribe("lobby")
	defer sub.Close()
	ctx := b.Context()
	var (
		received atomic.Int64
		reader   sync.WaitGroup
	)
	b.Cleanup(reader.Wait) // after b.Context is cancelled
	reader.Go(func() {
		for {
			select {
			case <-sub.C():
				received.Add(1)
			case <-sub.Dropped():
				return
			case <-ctx.Done():
				return
			}
		}
	})
	b.ReportAllocs()
	var posted int64
	for b.Loop() {
		if _, err := h.Post(ctx, "lobby", chat.Author{Name: "alice", Key: "a11ce0000000"}, "the quick brown fox jumps over the lazy dog"); err != nil {
			b.Fatalf("Post: %v", err)
		}
		posted++
		for posted-received.Load() >= queue/2 {
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(posted)/b.Elapsed().Seconds(), "posts/s")
	select {
	case <-sub.Dropped():
		b.Fatalf("the subscriber was dropped after %d of %d deliveries", received.Load(), posted)
	default:
	}
}

// BenchmarkMemoryAppend appends to a MemoryStore into one room from one
// poster and from 8 at once: posts/s and p99 latency.
func BenchmarkMemoryAppend(b *testing.B) {
	b.Run("Single", func(b *testing.B) { storetest.BenchAppend(b, chat.NewMemoryStore(0), 1) })
	b.Run("8Posters", func(b *testing.B) { storetest.BenchAppend(b, chat.NewMemoryStore(0), 8) })
}
