package main

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// histogram is a lock-free log-linear histogram of durations: 64 buckets
// per power of two (about 1.5% relative error), exact below 128 ns, with
// the exact maximum kept aside. It is shared by all subscribers, so memory
// does not grow with subscribers or events.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (63-histSubBits)*histSub + 2*histSub
)

func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	return shift*histSub + int(v>>shift)
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	m := uint64(i - shift*histSub)
	return m<<shift + (uint64(1)<<shift)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) count() uint64 { return h.n.Load() }

// quantile returns the q-quantile (0 < q ≤ 1), never above the maximum.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(n)))
	if target == 0 {
		target = 1
	}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= target {
			return min(time.Duration(histValue(i)), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// ack is a message the server acknowledged (303): it must reach every
// subscriber of its room that was connected before it was sent.
type ack struct {
	poster, n, room int
	sent            time.Time
}

// tracker does the accounting of one run.
type tracker struct {
	runID   string
	latency histogram // receive − send, first receipt of each message
	connect histogram // request → response headers, first connect

	mu   sync.Mutex
	acks []ack

	posted, postErrors   atomic.Int64
	deliveries           atomic.Int64 // first receipts of this run's messages
	duplicates, outOrder atomic.Int64
	reconnects           atomic.Int64 // streams that ended and were resumed
	connectErrors        atomic.Int64 // failed connects (network error or status ≠ 200)
	connected            atomic.Int64 // subscribers that connected at least once
	open                 atomic.Int64 // streams open now
	lastDelivery         atomic.Int64 // unix nanos of the newest first receipt
}

func newTracker(runID string) *tracker { return &tracker{runID: runID} }

func (t *tracker) text(poster, n int, sent time.Time) string {
	return fmt.Sprintf("load r%s p%d n%d t%d", t.runID, poster, n, sent.UnixNano())
}

func (t *tracker) acked(poster, n, room int, sent time.Time) {
	t.mu.Lock()
	t.acks = append(t.acks, ack{poster: poster, n: n, room: room, sent: sent})
	t.mu.Unlock()
	t.posted.Add(1)
}

// parseText reads a message text of this run: poster, counter, send time.
func (t *tracker) parseText(s string) (poster, n int, sent int64, ok bool) {
	f := strings.Fields(s)
	if len(f) != 5 || f[0] != "load" || f[1] != "r"+t.runID {
		return 0, 0, 0, false
	}
	num := func(s, prefix string) (int64, bool) {
		v, found := strings.CutPrefix(s, prefix)
		if !found {
			return 0, false
		}
		x, err := strconv.ParseInt(v, 10, 64)
		return x, err == nil && x >= 0
	}
	p, ok1 := num(f[2], "p")
	c, ok2 := num(f[3], "n")
	ts, ok3 := num(f[4], "t")
	if !ok1 || !ok2 || !ok3 || p > 1<<20 || c > 1<<30 {
		return 0, 0, 0, false
	}
	return int(p), int(c), ts, true
}

// recentSeqs is how many seqs below the newest a subscriber remembers to
// tell a duplicate from an out-of-order event.
const recentSeqs = 32

// subState is one subscriber's view: small and fixed but for a bitset of
// the messages received (one bit per message of this run).
type subState struct {
	room int

	mu          sync.Mutex
	connectedAt time.Time // first successful connect; zero: never
	haveSeq     bool
	lastSeq     int64 // highest message seq received
	recent      [recentSeqs]int64
	nrecent     int
	seen        [][]uint64 // per poster, bit n: message n received
}

func (s *subState) markConnected(at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.connectedAt.IsZero() {
		return false
	}
	s.connectedAt = at
	return true
}

func (s *subState) seqSeen(seq int64) bool {
	if s.haveSeq && seq == s.lastSeq {
		return true
	}
	for i := range min(s.nrecent, recentSeqs) {
		if s.recent[i] == seq {
			return true
		}
	}
	return false
}

func (s *subState) rememberSeq(seq int64) {
	s.recent[s.nrecent%recentSeqs] = seq
	s.nrecent++
}

// testAndSet marks message (poster, n) received and reports whether it
// already was.
func (s *subState) testAndSet(poster, n int) bool {
	for len(s.seen) <= poster {
		s.seen = append(s.seen, nil)
	}
	b := s.seen[poster]
	w := n / 64
	if w >= len(b) {
		nb := make([]uint64, max(w+1, 2*len(b)))
		copy(nb, b)
		b = nb
		s.seen[poster] = b
	}
	bit := uint64(1) << (n % 64)
	had := b[w]&bit != 0
	b[w] |= bit
	return had
}

func (s *subState) has(poster, n int) bool {
	if poster >= len(s.seen) || n/64 >= len(s.seen[poster]) {
		return false
	}
	return s.seen[poster][n/64]&(uint64(1)<<(n%64)) != 0
}

// message records one message event (not presence) received at now: its
// seq (when the id parsed) and its data.
func (t *tracker) message(s *subState, seq int64, hasSeq bool, data string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dup := false
	if hasSeq {
		switch {
		case s.seqSeen(seq):
			dup = true
		case s.haveSeq && seq < s.lastSeq:
			t.outOrder.Add(1)
			s.rememberSeq(seq)
		default:
			if s.haveSeq {
				s.rememberSeq(s.lastSeq)
			}
			s.haveSeq, s.lastSeq = true, seq
		}
	}
	for rest := data; ; {
		_, after, found := strings.Cut(rest, `<span class="text">`)
		if !found {
			break
		}
		text, tail, found := strings.Cut(after, "</span>")
		if !found {
			break
		}
		rest = tail
		poster, n, sent, ok := t.parseText(text)
		if !ok {
			continue
		}
		if s.testAndSet(poster, n) {
			dup = true
			continue
		}
		t.deliveries.Add(1)
		t.lastDelivery.Store(now.UnixNano())
		t.latency.record(time.Duration(now.UnixNano() - sent))
	}
	if dup {
		t.duplicates.Add(1)
	}
}

// expectedAndLost counts, over all subscribers, the acknowledged messages
// each should have received (of its room, sent after it first connected)
// and how many of those it did not.
func (t *tracker) expectedAndLost(subs []*subState) (expected, lost int64) {
	t.mu.Lock()
	acks := t.acks[:len(t.acks):len(t.acks)]
	t.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		if !s.connectedAt.IsZero() {
			for _, a := range acks {
				if a.room != s.room || a.sent.Before(s.connectedAt) {
					continue
				}
				expected++
				if !s.has(a.poster, a.n) {
					lost++
				}
			}
		}
		s.mu.Unlock()
	}
	return expected, lost
}
