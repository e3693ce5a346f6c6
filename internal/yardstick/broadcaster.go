// Package yardstick is the measure hxchat's fan-out is held against: the
// least an SSE fan-out has to do, with none of hxchat's guarantees (no
// store, no replay, no presence, no heartbeats, no limits). It is a
// measuring instrument, not a server to run: handlers' BenchmarkFanout1000
// drives a Broadcaster directly, and hxchat-load serves a Server
// (-serve-yardstick) so that the same load runs against hxchat and against
// it in one run.
package yardstick

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"
)

// Queue is how many events a subscriber may have waiting; one more and it
// is dropped.
const Queue = 256

// Broadcaster fans events out to SSE subscribers: each event is encoded
// once, sent without blocking to one bounded channel per subscriber (a
// full one is dropped: its stream ends), and each subscriber's handler
// writes everything queued, then flushes once.
type Broadcaster struct {
	mu   sync.RWMutex
	subs map[chan []byte]struct{}
	done chan struct{}
}

// New returns a Broadcaster without subscribers.
func New() *Broadcaster {
	return &Broadcaster{subs: make(map[chan []byte]struct{}), done: make(chan struct{})}
}

// Close ends every stream, and every stream opened afterwards at once. It
// must be called once.
func (bc *Broadcaster) Close() { close(bc.done) }

// Publish encodes the event (id: seq, a data line per line of html) once
// and queues it for every subscriber, dropping those whose queue is full.
// It never blocks on a subscriber. Subscribers get events in the order of
// the calls; callers that publish from several goroutines order them.
func (bc *Broadcaster) Publish(seq int64, html []byte) {
	ev := append(append([]byte("id: "), strconv.FormatInt(seq, 10)...), '\n')
	for line := range bytes.SplitSeq(html, []byte("\n")) {
		ev = append(append(append(ev, "data: "...), line...), '\n')
	}
	ev = append(ev, '\n')
	bc.mu.Lock() // a write lock: dropping removes from the map
	for c := range bc.subs {
		select {
		case c <- ev:
		default:
			delete(bc.subs, c)
			close(c)
		}
	}
	bc.mu.Unlock()
}

// ServeHTTP is one subscriber's stream: every event published after it
// was registered (before the response headers are sent), until the client
// leaves, the subscriber is dropped as too slow, or Close.
func (bc *Broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := make(chan []byte, Queue)
	bc.mu.Lock()
	bc.subs[c] = struct{}{}
	bc.mu.Unlock()
	defer func() {
		bc.mu.Lock()
		if _, ok := bc.subs[c]; ok {
			delete(bc.subs, c)
			close(c)
		}
		bc.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	for {
		select {
		case ev, ok := <-c:
			if !ok {
				return // dropped as too slow
			}
			// Write everything queued, then flush once.
			for more := true; more; {
				if _, err := w.Write(ev); err != nil {
					return
				}
				select {
				case ev, ok = <-c:
					if !ok {
						return
					}
				default:
					more = false
				}
			}
			if rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-bc.done:
			return
		}
	}
}
