package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// SIGTERM ends every open stream at once and the process exits well within
// 5 s, even with 100 streams open.
func TestSIGTERMEndsStreamsAndExits(t *testing.T) {
	const n = 100
	srv := startServer(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ended := make(chan error, n)
	for i := range n {
		resp := openStream(t, ctx, client, srv.URL+"/chat/r"+strconv.Itoa(i%10)+"/events?after=0")
		go func() {
			_, err := io.Copy(io.Discard, resp.Body)
			ended <- err
		}()
	}
	waitMetric(t, srv.URL, "hxchat_streams_open", n)

	start := time.Now()
	if err := syscall.Kill(srv.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for i := range n {
		select {
		case err := <-ended:
			if err != nil {
				t.Errorf("stream ended with %v, want a clean end", err)
			}
		case <-deadline:
			t.Fatalf("%d of %d streams still open 5s after SIGTERM", n-i, n)
		}
	}
	for {
		// The test's own Wait reaps the process; then signal 0 fails.
		if err := syscall.Kill(srv.PID, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("process still running 5s after SIGTERM")
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Logf("streams ended and process exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}
