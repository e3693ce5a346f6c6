package handlers

import (
	"net/http"
	"sync/atomic"
	"time"
)

// output is what r3labs writes a stream to: the net/http response
// (streamWriter) or the connection taken over from net/http (rawWriter).
// Both report each event r3labs wrote to the stream (Flush), so a batch of
// events is flushed once.
type output interface {
	http.ResponseWriter
	http.Flusher
	// end fails pending and future writes at once; any goroutine may call it.
	end()
	// done is called once r3labs returned, on the stream's goroutine.
	done()
}

// outputBase is what both outputs share: counting r3labs' flushes into
// written events, so a batch is flushed once, and the write deadline.
type outputBase struct {
	c       *stream
	flushes int // Flush calls so far
	deadline
}

// skipFlush is called at each of r3labs' Flushes: once after its
// WriteHeader, then once after each event it wrote (r3labs v2.10.0's
// ServeHTTP). It tells the stream of each written event and reports true
// while more are in flight: a later event's flush covers this one.
func (o *outputBase) skipFlush() bool {
	o.flushes++
	return o.flushes > 1 && o.c.written()
}

// deadline sets a stream's write deadlines (instead of the server's
// WriteTimeout, which would cut every stream): between ¾ and all of the
// timeout ahead, renewed when a quarter has passed rather than at every
// write, so a write blocked longer than that fails and ends the stream.
// arm runs on the stream's goroutine; end may run on any.
type deadline struct {
	set     func(time.Time) error
	timeout time.Duration
	renew   time.Time // when the deadline is due to be renewed
	ended   atomic.Bool
}

func (d *deadline) arm() {
	if now := time.Now(); now.After(d.renew) {
		_ = d.set(now.Add(d.timeout))
		d.renew = now.Add(d.timeout / 4)
	}
	// end may have run between the check and the set: make sure its past
	// deadline wins.
	if d.ended.Load() {
		_ = d.set(time.Unix(1, 0))
	}
}

// end makes pending and future writes fail at once.
func (d *deadline) end() {
	d.ended.Store(true)
	_ = d.set(time.Unix(1, 0))
}

// streamWriter is the http.ResponseWriter r3labs writes a stream that stays
// with net/http to. It ignores the second WriteHeader r3labs sends.
// Write and Flush run on the handler's goroutine only.
type streamWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	outputBase
}

func newStreamWriter(w http.ResponseWriter, c *stream, timeout time.Duration) *streamWriter {
	rc := http.NewResponseController(w)
	return &streamWriter{w: w, rc: rc, outputBase: outputBase{c: c, deadline: deadline{set: rc.SetWriteDeadline, timeout: timeout}}}
}

func (d *streamWriter) Header() http.Header { return d.w.Header() }

// WriteHeader is a no-op: the headers were written before r3labs ran.
func (d *streamWriter) WriteHeader(int) {}

// Write arms the deadline at every write: net/http's buffers pass a large
// batch on to the connection from within Write.
func (d *streamWriter) Write(p []byte) (int, error) {
	d.arm()
	return d.w.Write(p)
}

func (d *streamWriter) Flush() {
	if !d.skipFlush() {
		_ = d.flush()
	}
}

func (d *streamWriter) flush() error {
	d.arm()
	return d.rc.Flush()
}

// done removes the write deadline, which net/http would keep for the next
// request on this keep-alive connection, unless the stream was cut.
func (d *streamWriter) done() {
	if !d.ended.Load() {
		_ = d.set(time.Time{})
	}
}
