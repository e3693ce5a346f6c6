package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// presencePrefix starts the data of a presence event, which is no message.
const presencePrefix = `<hx-partial hx-target="#presence"`

// statusPrefix starts the data of a stream's own notice (its opening, or a
// refusal saying why), which is no message either.
const statusPrefix = `<hx-partial hx-target="#stream-status"`

// sseParser reads an event stream as a browser's EventSource does: the last
// event id is set by any id field (presence events included) and kept
// across events and reconnects; retry sets the reconnect delay. It keeps
// its buffers across events so that a delivery allocates nothing.
type sseParser struct {
	lastID []byte
	retry  time.Duration
	idBuf  []byte
	data   []byte
	long   []byte // a line longer than the read buffer
	inData bool
}

// readBufferSize holds any normal event whole (a message is well under
// 1 KiB); longer lines are put together in p.long. It is small because the
// tool holds one per subscriber: 10 000 of them share the server's machine.
const readBufferSize = 4 << 10

// read parses r until it ends, calling fn for every dispatched event with
// the last event id and its data; both are only valid during the call.
func (p *sseParser) read(r io.Reader, fn func(id, data []byte)) error {
	br := bufio.NewReaderSize(r, readBufferSize)
	p.idBuf, p.data, p.inData = append(p.idBuf[:0], p.lastID...), p.data[:0], false
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			p.long = append(p.long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				p.long = append(p.long, line...)
			}
			line = p.long
		}
		if err != nil {
			return err // an incomplete event is discarded, as a browser does
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			p.lastID = append(p.lastID[:0], p.idBuf...)
			if p.inData {
				fn(p.lastID, bytes.TrimSuffix(p.data, []byte("\n")))
			}
			p.data, p.inData = p.data[:0], false
			continue
		}
		if line[0] == ':' {
			continue // a comment (": ping")
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) { // compared without a conversion
		case "data":
			p.data = append(append(p.data, value...), '\n')
			p.inData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.idBuf = append(p.idBuf[:0], value...)
			}
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil && ms >= 0 {
				p.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// subscriber keeps one SSE stream of a room open until ctx ends, resuming
// with Last-Event-ID whenever the stream drops (after the advertised retry
// delay) or is churned (at once, or after -churn-pause).
//
// connected is called after the first connect, with the subscribers
// connected so far (this one included).
func (l *loader) subscriber(ctx context.Context, s *subState, connected func(n int64)) {
	p := &sseParser{retry: 2 * time.Second}
	u, err := url.Parse(l.node(s.node) + "/chat/" + l.roomName(s.room) + "/events")
	if err != nil {
		l.note(err)
		return
	}
	onEvent := func(id, data []byte) {
		if bytes.HasPrefix(data, []byte(presencePrefix)) || bytes.HasPrefix(data, []byte(statusPrefix)) {
			return
		}
		seq, ok := parseSeq(id)
		l.t.message(s, seq, ok, data, time.Now())
	}
	for ctx.Err() == nil {
		t0 := time.Now()
		c, err := l.openStream(ctx, u, p.lastID)
		if err == nil && c.resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, io.LimitReader(c.resp.Body, 4<<10))
			c.close()
			err = errStatus(c.resp.StatusCode)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.t.connectErrors.Add(1)
			l.note(err)
			sleep(ctx, backoff(p.retry))
			continue
		}
		now := time.Now()
		if s.markConnected(now) {
			l.t.connect.record(now.Sub(t0))
			connected(l.t.connected.Add(1))
		}
		s.streamOpened(c.close)
		l.t.open.Add(1)
		err = p.read(c.resp.Body, onEvent)
		l.t.open.Add(-1)
		churned := s.streamEnded()
		c.close()
		switch {
		case ctx.Err() != nil:
			return
		case churned:
			l.t.churned.Add(1)
			sleep(ctx, l.o.churnPause)
		default:
			l.t.reconnects.Add(1)
			if err != nil && err != io.EOF {
				l.note(err)
			}
			sleep(ctx, backoff(p.retry))
		}
	}
}

// churner closes a random open stream every minute/(rate × subscribers)
// until ctx ends, so that -reconnect-rate of the subscribers reconnect each
// minute, spread evenly over the minute rather than in bursts.
func (l *loader) churner(ctx context.Context, subs []*subState) {
	if l.o.reconnectRate <= 0 || len(subs) == 0 {
		return
	}
	tk := time.NewTicker(churnInterval(l.o.reconnectRate, len(subs)))
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		// From a random start, the first subscriber with an open stream:
		// one between two streams is passed over (it is reconnecting
		// already). Bounded by the subscribers; usually the first one.
		i := rand.IntN(len(subs))
		for range subs {
			if subs[i].churn() {
				break
			}
			i = (i + 1) % len(subs)
		}
	}
}

// churnInterval is the time between two churns: a minute over the churns a
// minute, at least a millisecond (a rate that asks for more reconnects
// than that is meaningless for a load test, and a ticker cannot do zero).
func churnInterval(rate float64, subscribers int) time.Duration {
	return max(time.Duration(float64(time.Minute)/(rate*float64(subscribers))), time.Millisecond)
}

// backoff is the advertised retry delay with up to a fifth of jitter, so a
// crowd dropped at once does not come back at once.
func backoff(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + rand.N(d/5+1)
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

type errStatus int

func (e errStatus) Error() string {
	return "status " + strconv.Itoa(int(e)) + " " + strings.ToLower(http.StatusText(int(e)))
}
