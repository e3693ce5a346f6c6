package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hxchat/hxchat/internal/servertest"
)

// serverBin is the hxchat binary built by TestMain ("" in -short mode).
var serverBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if !testingShort() {
			dir, err := os.MkdirTemp("", "hxchat-load-test")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			if serverBin, err = servertest.Build("../..", dir); err != nil {
				fmt.Fprintln(os.Stderr, "building the server:", err)
				return 1
			}
		}
		return m.Run()
	}())
}

// testingShort reads -test.short before m.Run parses the flags.
func testingShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

// startServer runs the hxchat binary on a free loopback port, with the
// per-client limits off (the load comes from one address), and returns its
// URL; it is stopped when the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	if serverBin == "" {
		t.Skip("needs the server binary (not built in -short mode)")
	}
	return servertest.Start(t, serverBin, "-addr", "127.0.0.1:0", "-db", ":memory:",
		"-post-rate", "0", "-max-streams-per-client", "0", "-log-level", "warn").URL
}

func TestSmoke(t *testing.T) {
	u := startServer(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"-url", u, "-subscribers", "100", "-rooms", "2", "-posters", "4",
		"-rate", "20", "-duration", "5s", "-warmup", "500ms", "-drain", "10s", "-json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("parsing the JSON report: %v\n%s", err, stdout.String())
	}
	t.Logf("report: %s", stdout.String())
	if rep.Connected != 100 {
		t.Errorf("connected = %d, want 100", rep.Connected)
	}
	if rep.Posted == 0 || rep.Deliveries == 0 || rep.Expected == 0 {
		t.Errorf("posted %d, deliveries %d, expected %d: want all > 0", rep.Posted, rep.Deliveries, rep.Expected)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.OutOfOrder != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d: want none", rep.Lost, rep.Duplicated, rep.OutOfOrder)
	}
	if rep.ServerEnd.RSSBytes <= 0 || rep.ServerEnd.Goroutines <= 0 {
		t.Errorf("server stats at the end = %+v: want both read from /metrics", rep.ServerEnd)
	}
}
