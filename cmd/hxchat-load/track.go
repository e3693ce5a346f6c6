package main

import (
	"bytes"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hxchat/hxchat/chat"
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
	prefix  []byte    // "load rRUN p": how every message text of this run starts
	latency histogram // receive − send, first receipt of each message
	connect histogram // request → response headers, first connect

	mu   sync.Mutex
	acks []ack

	// The first receipts of this run's messages are latency.count(): a
	// counter of their own would be one more shared write per delivery.
	posted, postErrors   atomic.Int64
	duplicates, outOrder atomic.Int64
	reconnects           atomic.Int64 // streams that ended unplanned and were resumed
	churned              atomic.Int64 // streams closed on purpose (-reconnect-rate) and resumed
	connectErrors        atomic.Int64 // failed connects (network error or status ≠ 200)
	connected            atomic.Int64 // subscribers that connected at least once
	open                 atomic.Int64 // streams open now
}

func newTracker(runID string) *tracker {
	return &tracker{runID: runID, prefix: []byte("load r" + runID + " p")}
}

func (t *tracker) text(poster, n int, sent time.Time) string {
	b := make([]byte, 0, 64)
	b = append(b, t.prefix...)
	b = strconv.AppendInt(b, int64(poster), 10)
	b = append(b, " n"...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, " t"...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	return string(b)
}

func (t *tracker) acked(poster, n, room int, sent time.Time) {
	t.mu.Lock()
	t.acks = append(t.acks, ack{poster: poster, n: n, room: room, sent: sent})
	t.mu.Unlock()
	t.posted.Add(1)
}

// parseText reads a message text of this run ("load rRUN pP nN tT"):
// poster, counter, send time. It works on the bytes as received, without
// allocating: it runs once per delivery, and with 10 000 subscribers on the
// server's machine every microsecond here is latency measured.
func (t *tracker) parseText(b []byte) (poster, n int, sent int64, ok bool) {
	rest, ok := bytes.CutPrefix(b, t.prefix)
	if !ok {
		return 0, 0, 0, false
	}
	p, rest, ok1 := cutUint(rest)
	rest, ok2 := bytes.CutPrefix(rest, []byte(" n"))
	c, rest, ok3 := cutUint(rest)
	rest, ok4 := bytes.CutPrefix(rest, []byte(" t"))
	ts, rest, ok5 := cutUint(rest)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || len(rest) != 0 || p > 1<<20 || c > 1<<30 {
		return 0, 0, 0, false
	}
	return int(p), int(c), ts, true
}

// cutUint reads the decimal digits b starts with (at least one, and a
// value that fits an int64) and returns their value and the rest of b.
func cutUint(b []byte) (v int64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		d := int64(b[i] - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, b, false
		}
		v = v*10 + d
	}
	if i == 0 {
		return 0, b, false
	}
	return v, b[i:], true
}

// parseSeq reads the seq of an event id: a cursor "SEQ-EPOCH" or a bare
// "SEQ", as chat.ParseCursor reads it (a test holds the two to the same
// answers). It works on the bytes, without the allocation a string would
// cost on every delivery.
func parseSeq(b []byte) (int64, bool) {
	v, rest, ok := cutUint(b) // overflow is not ok; leading zeros are
	if !ok {
		return 0, false
	}
	if len(rest) == 0 {
		return v, true
	}
	epoch, ok := bytes.CutPrefix(rest, []byte("-"))
	if !ok || len(epoch) == 0 || len(epoch) > chat.MaxEpochLen {
		return 0, false
	}
	for _, c := range epoch {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return 0, false
		}
	}
	return v, true
}

// recentSeqs is how many seqs below the newest a subscriber remembers to
// tell a duplicate from an out-of-order event.
const recentSeqs = 32

// subState is one subscriber's view: small and fixed but for a bitset of
// the messages received (one bit per message of this run). Only its own
// subscriber goroutine writes it while the run goes on; mu is for the
// reports read while it runs and for the churner.
type subState struct {
	room int
	node int // the index of its base URL in -url

	mu          sync.Mutex
	connectedAt time.Time // first successful connect; zero: never
	haveSeq     bool
	lastSeq     int64 // highest message seq received
	recent      [recentSeqs]int64
	nrecent     int
	seen        [][]uint64 // per poster, bit n: message n received
	// lastDelivery is the time of this subscriber's newest first receipt,
	// kept here under mu rather than in the tracker so that a delivery
	// writes no more shared memory; the run takes the max at the end.
	lastDelivery time.Time

	// closeStream ends the open stream (nil: none is open); churning is
	// set when the churner used it, so the subscriber counts the end as
	// planned and reconnects without the backoff.
	closeStream func()
	churning    bool
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

// streamOpened records how to end the stream that just opened.
func (s *subState) streamOpened(closeStream func()) {
	s.mu.Lock()
	s.closeStream, s.churning = closeStream, false
	s.mu.Unlock()
}

// streamEnded reports whether the stream that just ended was closed by
// churn, and forgets it. A stream the server ended in the instant between
// its last byte and this call, while the churner picked it, counts as
// churned: the window is the few instructions from the read's return to
// here, so the miscount is at most one in a great many.
func (s *subState) streamEnded() (churned bool) {
	s.mu.Lock()
	churned = s.churning
	s.closeStream, s.churning = nil, false
	s.mu.Unlock()
	return churned
}

// churn closes s's open stream on purpose, as a browser whose page closes
// its EventSource and opens a new one; false when no stream is open (not
// yet connected, between two streams, or already being churned).
func (s *subState) churn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeStream == nil || s.churning {
		return false
	}
	s.churning = true
	s.closeStream()
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

var (
	textOpen  = []byte(`<span class="text">`)
	textClose = []byte(`</span>`)
)

// message records one message event (not presence) received at now: its
// seq (when the id parsed) and its data. data is only read during the call.
func (t *tracker) message(s *subState, seq int64, hasSeq bool, data []byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dup, older := false, false
	if hasSeq {
		switch {
		case s.seqSeen(seq):
			dup = true
		case s.haveSeq && seq < s.lastSeq:
			// Out of order unless its message turns out to be received
			// already: a repeat of a seq older than the recent window.
			older = true
			s.rememberSeq(seq)
		default:
			if s.haveSeq {
				s.rememberSeq(s.lastSeq)
			}
			s.haveSeq, s.lastSeq = true, seq
		}
	}
	// An event normally holds one message; a snapshot of the log holds
	// several, one per line.
	for rest := data; ; {
		i := bytes.Index(rest, textOpen)
		if i < 0 {
			break
		}
		rest = rest[i+len(textOpen):]
		j := bytes.Index(rest, textClose)
		if j < 0 {
			break
		}
		text := rest[:j]
		rest = rest[j+len(textClose):]
		poster, n, sent, ok := t.parseText(text)
		if !ok {
			continue
		}
		if s.testAndSet(poster, n) {
			dup = true
			continue
		}
		s.lastDelivery = now
		t.latency.record(time.Duration(now.UnixNano() - sent))
	}
	// A duplicate is a duplicate, not also out of order.
	switch {
	case dup:
		t.duplicates.Add(1)
	case older:
		t.outOrder.Add(1)
	}
}

// lastDelivery is the newest first receipt over all subscribers (zero:
// none).
func lastDelivery(subs []*subState) time.Time {
	var last time.Time
	for _, s := range subs {
		s.mu.Lock()
		if s.lastDelivery.After(last) {
			last = s.lastDelivery
		}
		s.mu.Unlock()
	}
	return last
}

// anyMissing reports whether some subscriber still lacks an acknowledged
// message it should receive. The drain polls it; it stops at the first.
func (t *tracker) anyMissing(subs []*subState) bool {
	_, lost := t.count(subs, true)
	return lost > 0
}

// expectedAndLost counts, over all subscribers, the acknowledged messages
// each should have received (of its room, sent after it first connected)
// and how many of those it did not.
func (t *tracker) expectedAndLost(subs []*subState) (expected, lost int64) {
	return t.count(subs, false)
}

// count walks subscribers × acknowledged messages; with first it stops at
// the first lost one.
func (t *tracker) count(subs []*subState, first bool) (expected, lost int64) {
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
					if first {
						break
					}
				}
			}
		}
		s.mu.Unlock()
		if first && lost > 0 {
			break
		}
	}
	return expected, lost
}
