package handlers

// The live log: GET /chat/{room}/log, the document the room page frames
// for browsers without JavaScript. It is one long HTML response: the recent
// messages, then each new message appended as the room's follower hands it
// over — the same chat.Follower, with its exactly-once order, bounded queue
// and resumption from the store, as an SSE stream — kept open by comment
// heartbeats and ended after -stream-lifetime, on a drain or a shutdown.
// Its last bytes are then a refresh element, so the frame loads it again
// by itself (views/log.templ). It is admitted like a stream (draining,
// -max-streams, -max-streams-per-client) and makes its person present. It
// stays with net/http (no take-over: a browser without JavaScript is the
// rare visitor, and one goroutine each is fine for them), outside the
// compressing middleware, with a write deadline per write.

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// frameWindow is the most events a live log holds for writing; a fuller
// one makes its follower fall behind (and resume from the store), as for
// an SSE stream.
const frameWindow = 64

// frameBeat is the heartbeat of a live log: an HTML comment.
var frameBeat = []byte("<!-- -->\n")

// frameSink is a live log's chat.Sink: a bounded queue the handler's
// goroutine drains.
type frameSink struct {
	mu    sync.Mutex
	queue []*chat.Event
	full  bool // an Offer was refused: Pump once drained
	ended bool
	err   error
	wake  chan struct{} // cap 1: something to take
}

func newFrameSink() *frameSink {
	return &frameSink{wake: make(chan struct{}, 1)}
}

func (s *frameSink) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Offer implements chat.Sink; it never blocks.
func (s *frameSink) Offer(ev *chat.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= frameWindow {
		s.full = true
		return false
	}
	s.queue = append(s.queue, ev)
	s.signal()
	return true
}

// End implements chat.Sink: the follower stopped (the store failed).
func (s *frameSink) End(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended, s.err = true, err
	s.signal()
}

// take returns what is queued, whether the follower waits to be pumped,
// and whether it ended.
func (s *frameSink) take(buf []*chat.Event) (evs []*chat.Event, pump, ended bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs = append(buf[:0], s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	pump, s.full = s.full, false
	return evs, pump, s.ended, s.err
}

// handleLiveLog serves a room's live log (see the top of this file).
// It reads the recent history from hist, and follows the room and makes
// its person present through s's hub.
func handleLiveLog(logger *slog.Logger, hist Historian, s *Streams, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		room, err := roomParam(r)
		if err != nil {
			renderError(w, r, statusOf(err), "Bad room name", chat.Reason(err))
			return
		}
		frameHeaders(w.Header())
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		if !s.enter() {
			s.metrics.rejected("draining")
			refuseFrame(w, r, room, "the server is restarting", s.cfg.Retry)
			return
		}
		defer s.wg.Done()
		release, ok, which := s.limits.Acquire(clientOf(r))
		if !ok {
			s.metrics.rejected(which)
			refuseFrame(w, r, room, limitReason(which), s.cfg.Retry)
			return
		}
		defer release()

		// The recent messages, then the follower from the newest of them:
		// what is posted in between is replayed, nothing twice. An empty
		// room is followed from seq 0 of its current history.
		msgs, earlier, err := page(r.Context(), hist, room, 0, n)
		var from chat.Cursor
		if err == nil && len(msgs) > 0 {
			last := msgs[len(msgs)-1]
			from = chat.Cursor{Epoch: last.Epoch, Seq: last.Seq}
		}
		sink := newFrameSink()
		var f *chat.Follower
		if err == nil {
			f, err = s.hub.Follow(r.Context(), room, from, true, sink)
		}
		if err != nil {
			if clientLeft(r) {
				logFailure(logger, r, slog.LevelError, "live log: read history", slog.String("room", room), slog.Any("err", err))
				return
			}
			s.metrics.StoreErrors.WithLabelValues("read").Inc()
			logger.LogAttrs(r.Context(), slog.LevelError, "live log: read history", slog.String("room", room), slog.Any("err", err))
			refuseFrame(w, r, room, "the chat's history cannot be read right now", s.cfg.Retry)
			return
		}
		defer f.Close()
		defer s.hub.Join(room, memberOf(r))()
		open, err := views.LiveLogOpen(room, msgs, earlier)
		if err != nil {
			logger.LogAttrs(r.Context(), slog.LevelError, "live log: render", slog.String("room", room), slog.Any("err", err))
			renderError(w, r, http.StatusInternalServerError, "Internal error", "Something went wrong on our side.")
			return
		}
		s.metrics.StreamsOpen.Inc()
		defer s.metrics.StreamsOpen.Dec()
		fw := &frameWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
		w.WriteHeader(http.StatusOK)
		if fw.write(open) != nil {
			return
		}
		fw.serve(r.Context(), s, f, sink)
	}
}

// frameWriter writes a live log, each write under its own deadline and
// flushed at once.
type frameWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     bytes.Buffer
}

func (fw *frameWriter) write(b []byte) error {
	_ = fw.rc.SetWriteDeadline(time.Now().Add(fw.timeout))
	if _, err := fw.w.Write(b); err != nil {
		return err
	}
	return fw.rc.Flush()
}

// end writes the end of the document, which loads it again after wait.
func (fw *frameWriter) end(wait time.Duration) {
	_ = fw.write(views.LiveLogEnd(int(math.Ceil(wait.Seconds()))))
}

// serve writes what the follower hands over until the document ends: the
// client left, the lifetime passed, the server drains or shuts down, or
// the follower met what a document without JavaScript cannot apply.
func (fw *frameWriter) serve(ctx context.Context, s *Streams, f *chat.Follower, sink *frameSink) {
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	var life <-chan time.Time
	if s.cfg.Lifetime > 0 {
		t := time.NewTimer(jitter(s.cfg.Lifetime))
		defer t.Stop()
		life = t.C
	}
	var evs []*chat.Event
	for {
		select {
		case <-sink.wake:
			var (
				pump, ended bool
				err         error
			)
			evs, pump, ended, err = sink.take(evs)
			fw.buf.Reset()
			reload := false
			written := 0
			for _, ev := range evs {
				switch ev.Kind {
				case chat.Members: // the live log shows no member list
				case chat.Replaces:
					// A snapshot or a deletion: what is shown is no
					// longer right, and a document without JavaScript
					// can only be loaded again.
					reload = true
				default:
					fw.buf.Write(ev.HTML)
					fw.buf.WriteByte('\n')
					written++
				}
				if reload {
					break
				}
			}
			if fw.buf.Len() > 0 {
				if fw.write(fw.buf.Bytes()) != nil {
					return
				}
				s.metrics.Deliveries.Add(float64(written))
			}
			switch {
			case reload:
				fw.end(0)
				return
			case ended:
				// The store failed: come back when it may answer.
				s.logger.LogAttrs(ctx, slog.LevelWarn, "live log: follower ended", slog.Any("err", err))
				fw.end(refuseWait(s.cfg.Retry))
				return
			case pump:
				f.Pump()
			}
		case <-beat.C:
			if fw.write(frameBeat) != nil {
				return
			}
		case <-life:
			fw.end(time.Second)
			return
		case <-s.ctx.Done():
			// Draining or shutting down: the next load finds another
			// node, or this one back.
			fw.end(refuseWait(s.cfg.Retry))
			return
		case <-ctx.Done():
			return
		}
	}
}

// frameHeaders sets the headers of a live log: HTML, never cached, never
// transformed or buffered by a proxy, no length.
func frameHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
}

// refuseFrame answers a live log that cannot be served now with a short
// document: the reason, and a refresh element that tries again later,
// as a refused stream's retry: does. 503 with Retry-After.
func refuseFrame(w http.ResponseWriter, r *http.Request, room, reason string, retry time.Duration) {
	wait := refuseWait(retry)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	render(w, r, http.StatusServiceUnavailable, views.LiveLogRefused(room, reason, int(math.Ceil(wait.Seconds()))))
}
