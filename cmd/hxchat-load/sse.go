package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// presencePrefix starts the data of a presence event, which is no message.
const presencePrefix = `<hx-partial hx-target="#presence"`

// sseParser reads an event stream as a browser's EventSource does: the last
// event id is set by any id field (presence events included) and kept
// across events and reconnects; retry sets the reconnect delay.
type sseParser struct {
	lastID string
	retry  time.Duration
	idBuf  string
	data   []byte
	inData bool
}

// read parses r until it ends, calling fn for every dispatched event with
// the last event id and its data.
func (p *sseParser) read(r io.Reader, fn func(id string, data []byte)) error {
	br := bufio.NewReaderSize(r, 16<<10)
	p.idBuf, p.data, p.inData = p.lastID, p.data[:0], false
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			return err // an incomplete event is discarded, as a browser does
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			p.lastID = p.idBuf
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
		switch string(field) {
		case "data":
			p.data = append(append(p.data, value...), '\n')
			p.inData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.idBuf = string(value)
			}
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil && ms >= 0 {
				p.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// subscriber keeps one SSE stream of a room open until ctx ends, resuming
// with Last-Event-ID whenever the stream drops.
func (l *loader) subscriber(ctx context.Context, s *subState, connected func()) {
	p := &sseParser{retry: 2 * time.Second}
	u := l.base + "/chat/" + l.roomName(s.room) + "/events"
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Cache-Control", "no-cache")
		if p.lastID != "" {
			req.Header.Set("Last-Event-ID", p.lastID)
		}
		t0 := time.Now()
		resp, err := l.subClient.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			err = errStatus(resp.StatusCode)
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
			l.t.connected.Add(1)
			connected()
		}
		l.t.open.Add(1)
		err = p.read(resp.Body, func(id string, data []byte) {
			if bytes.HasPrefix(data, []byte(presencePrefix)) {
				return
			}
			seq, perr := strconv.ParseInt(id, 10, 64)
			l.t.message(s, seq, perr == nil, string(data), time.Now())
		})
		l.t.open.Add(-1)
		resp.Body.Close()
		if ctx.Err() != nil {
			return
		}
		l.t.reconnects.Add(1)
		if err != nil && err != io.EOF {
			l.note(err)
		}
		sleep(ctx, backoff(p.retry))
	}
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
