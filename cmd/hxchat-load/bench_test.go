package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// BenchmarkEvents is the tool's own work per event once the bytes are in
// memory: SSE parsing and the accounting, without the network. With 10 000
// subscribers it runs 100 000 times a second on the server's machine, so it
// must not allocate.
func BenchmarkEvents(b *testing.B) {
	tr := newTracker("BENCHRUN")
	var buf bytes.Buffer
	const n = 1000
	for i := range n {
		fmt.Fprintf(&buf, "id: %d\ndata: <li id=\"msg-%d\" class=\"msg\" data-author=\"abcdefgh\"><span class=\"author\">guest-1234</span> <time datetime=\"2026-11-25T11:00:00Z\">2026-11-25 11:00 UTC</time> <span class=\"text\">%s</span></li>\n\n",
			i+1, i+1, tr.text(i%4, i/4, time.Now()))
	}
	stream := buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		s := &subState{}
		p := &sseParser{}
		_ = p.read(bytes.NewReader(stream), func(id, data []byte) {
			seq, ok := parseSeq(id)
			tr.message(s, seq, ok, data, time.Now())
		})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
