package handlers

import (
	"bytes"
	"net"
	"net/http"
	"sync"
	"time"
)

// An HTTP/1.x stream is taken over from net/http once its request is
// admitted: net/http keeps about 24 KiB per connection for as long as a
// handler runs (a goroutine with a deep stack, a 4 KiB read buffer, 6 KiB
// of write buffers), which for a stream that stays open for minutes and is
// idle most of the time is most of its cost. The taken-over stream is a
// close-delimited HTTP/1.1 response written straight to the connection
// (RFC 9112 §6.3: no Content-Length, no chunking, Connection: close), so
// any HTTP/1.0 or 1.1 client or proxy reads it, and the end of the stream
// is the end of the connection. HTTP/2 streams share their connection and
// stay with net/http.

// rawLinger is how long a raw stream's connection waits, after the server
// ended the stream, for the client to close its side: closing at once
// with unread input could reset the connection and lose the tail of the
// stream.
const rawLinger = time.Second

// rawFlushAt is how much a batch buffers before it is written out early.
const rawFlushAt = 64 << 10

// watchHangup is hangups.watch; tests replace it to take the fallback.
var watchHangup = hangups.watch

// rawBufs holds batch buffers while no batch is being written, so an idle
// stream holds none.
var rawBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// hijacker returns the http.Hijacker under w's wrappers, or nil.
func hijacker(w http.ResponseWriter) http.Hijacker {
	for {
		if h, ok := w.(http.Hijacker); ok {
			return h
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}

// takeOver hijacks the connection and writes the response head, with
// header and then first (the retry line). On an error the connection is
// closed.
func takeOver(hj http.Hijacker, header http.Header, c *stream, first []byte, timeout time.Duration) (*rawWriter, error) {
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	// net/http's read and write deadlines of the request stay on a
	// hijacked connection; ours are set per write. Input the client sent
	// after its request (brw.Reader) is not a request we serve: the stream
	// is the last response on this connection.
	_ = conn.SetDeadline(time.Time{})
	_ = brw
	d := &rawWriter{conn: conn, header: make(http.Header),
		outputBase: outputBase{c: c, deadline: deadline{set: conn.SetWriteDeadline, timeout: timeout}}}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = header.Write(&head)
	head.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\nConnection: close\r\n\r\n")
	head.Write(first)
	if _, err := d.Write(head.Bytes()); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := d.flush(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	// A client sends nothing after its request: input, its shutdown or an
	// error all mean it is gone.
	stop, ok := watchHangup(conn, d.hangup)
	if !ok {
		go d.watch()
		return d, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		stop() // the client was gone at once
	} else {
		d.unwatch = stop
	}
	return d, nil
}

// rawWriter writes a taken-over stream to its connection. Writes collect
// in a buffer that is written out when r3labs flushes the last event in
// flight (or when it grows past rawFlushAt). Write and Flush run on the
// stream's goroutine only; end may run on any.
type rawWriter struct {
	conn   net.Conn
	header http.Header // what r3labs sets on it is not sent: the head was written
	buf    *[]byte     // the batch being collected; nil between batches
	err    error       // the first write error; later writes fail with it at once
	outputBase

	mu      sync.Mutex // guards unwatch and closed
	unwatch func()     // stops hangups watching the connection; nil: watch reads it
	closed  bool
}

func (d *rawWriter) Header() http.Header { return d.header }

// WriteHeader is a no-op: the head was written by takeOver.
func (d *rawWriter) WriteHeader(int) {}

func (d *rawWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.buf == nil {
		d.buf = rawBufs.Get().(*[]byte)
	}
	*d.buf = append(*d.buf, p...)
	if len(*d.buf) >= rawFlushAt {
		if err := d.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (d *rawWriter) Flush() {
	d.header = nil // r3labs is done with it after its first Flush
	if !d.skipFlush() {
		_ = d.flush()
	}
}

// flush writes the batch out under a fresh write deadline.
func (d *rawWriter) flush() error {
	if d.buf == nil || d.err != nil {
		return d.err
	}
	b := d.buf
	d.buf = nil
	d.arm() // only here: nothing reaches the connection between batches
	_, d.err = d.conn.Write(*b)
	if cap(*b) <= rawFlushAt {
		*b = (*b)[:0]
		rawBufs.Put(b)
	}
	if d.err != nil {
		// A write that failed (the deadline passed: the client stopped
		// reading; or the connection broke) ends the stream, as net/http
		// cancels a request whose connection failed a write.
		d.c.end(true)
	}
	return d.err
}

// done writes what is left and ends the response by closing the
// connection's sending side; the connection is closed when the client
// closes its side (hangup), or after rawLinger.
func (d *rawWriter) done() {
	_ = d.flush()
	if cw, ok := d.conn.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		d.close()
		return
	}
	d.mu.Lock()
	watched := d.unwatch != nil
	d.mu.Unlock()
	if !watched {
		_ = d.conn.SetReadDeadline(time.Now().Add(rawLinger)) // ends watch's read
		return
	}
	time.AfterFunc(rawLinger, d.close)
}

// close closes the connection, once, after hangups stopped watching it.
// It runs on the stream's goroutine, the hangup watcher's or a timer's.
func (d *rawWriter) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if d.unwatch != nil {
		d.unwatch()
	}
	_ = d.conn.Close()
}

// hangup is called when the client is gone: any write is cut at once and
// the connection closed.
func (d *rawWriter) hangup() {
	d.c.end(true)
	d.close()
}

// watch is hangup's fallback where sockets cannot be watched without a
// goroutine: it reads the connection until the client sends anything or
// closes it, as net/http's background read does.
func (d *rawWriter) watch() {
	var b [1]byte
	_, _ = d.conn.Read(b[:])
	d.hangup()
}
