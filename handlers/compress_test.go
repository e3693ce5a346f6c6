package handlers

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Pages are compressed for clients that accept it; the event stream never
// is, whatever the client accepts.
func TestCompression(t *testing.T) {
	e := newEnv(t)
	e.post(t, "lobby", "hello")
	ts := e.serve(t)
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/chat/lobby/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("room page Content-Encoding %q, want gzip", got)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(zr)
	if !strings.Contains(string(page), "hello") {
		t.Fatal("decompressed room page lacks the message")
	}

	hdr := http.Header{"Accept-Encoding": {"gzip, deflate, br"}}
	sresp, rd := openStream(t, ts, "/chat/lobby/events?after=0", hdr)
	if got := sresp.Header.Get("Content-Encoding"); got != "" {
		t.Fatalf("event stream Content-Encoding %q, want none", got)
	}
	if ev, err := rd.next(); err != nil || ev.Retry == "" {
		t.Fatalf("stream's first block: %+v, %v; want the plain retry line", ev, err)
	}
}
