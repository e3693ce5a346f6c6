package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hxchat/hxchat/internal/servertest"
)

// serverBin is the hxchat binary built by TestMain ("" in -short mode).
var serverBin string

func TestMain(m *testing.M) {
	// testing.Short needs the flags parsed, and m.Run parses them only
	// after the server would be built.
	flag.Parse()
	os.Exit(func() int {
		if !testing.Short() {
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

// startServer runs the hxchat binary on a free loopback port, with the
// per-client limits off (the load comes from one address), and returns its
// URL; it is stopped when the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	if serverBin == "" {
		t.Skip("needs the server binary (not built in -short mode)")
	}
	return servertest.Start(t, serverBin, "-addr", "127.0.0.1:0", "-db", ":memory:",
		"-post-rate", "0", "-max-streams-per-client", "0", "-max-conns-per-client", "0", "-log-level", "warn").URL
}

// TestSmoke runs the load tool against the real server: 100 subscribers, 5 s
// of posting, and churn at 120 % of the subscribers a minute (one every
// half second: about 10 resumes), each churned subscriber staying away
// 200 ms, so messages of its room are posted meanwhile and can reach it
// only through the server's replay after its Last-Event-ID. Nothing may be
// lost, duplicated or out of order.
func TestSmoke(t *testing.T) {
	u := startServer(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"-url", u, "-subscribers", "100", "-rooms", "2", "-posters", "4",
		"-rate", "20", "-duration", "5s", "-warmup", "500ms", "-drain", "10s",
		"-reconnect-rate", "1.2", "-churn-pause", "200ms", "-sample", "1s", "-settle", "2s", "-json"}, &stdout, &stderr)
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
	// The churner ticks every 0.5 s of the 5 s: at most 10 churns; a slow
	// machine may skip ticks, so at least half of them is asked for.
	if rep.Churned < 5 || rep.Churned > 10 {
		t.Errorf("churned = %d, want 5 to 10", rep.Churned)
	}
	if rep.Reconnects != 0 {
		t.Errorf("unplanned reconnects = %d, want 0 (last error %q)", rep.Reconnects, rep.LastError)
	}
	if rep.ServerEnd.RSSBytes <= 0 || rep.ServerEnd.Goroutines <= 0 {
		t.Errorf("server stats at the end = %+v: want both read from /metrics", rep.ServerEnd)
	}
	// A sample at 0 s, one a second, one at the end; the flatness from 2 s
	// on (the settle time, under half of -duration).
	if n := len(rep.Samples); n < 3 {
		t.Errorf("%d server samples, want at least 3", n)
	}
	for _, s := range rep.Samples {
		if s.RSSBytes <= 0 || s.Goroutines <= 0 {
			t.Errorf("server sample %+v: want RSS and goroutines read", s)
		}
	}
	if f := rep.Flatness; f.SettleSeconds != 2 || f.Samples == 0 || f.RSSMaxDevPct < 0 || f.GoroutinesMaxDevPct < 0 {
		t.Errorf("flatness = %+v: want figures from the samples after 2 s", f)
	}
	if rep.URL != u || rep.Nodes != nil {
		t.Errorf("url %q, nodes %+v: want %q and no per-node figures (one URL)", rep.URL, rep.Nodes, u)
	}
}

// TestSmokeSameURLTwice runs the load tool against the real server named
// twice in -url: the subscribers and posters are split between the two
// "nodes", which are one server, so nothing may be lost, duplicated or out
// of order, and the server figures are reported per URL and summed.
func TestSmokeSameURLTwice(t *testing.T) {
	u := startServer(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"-url", u + "," + u, "-subscribers", "50", "-rooms", "3", "-posters", "3",
		"-rate", "30", "-duration", "3s", "-warmup", "500ms", "-drain", "10s", "-progress", "0", "-json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("parsing the JSON report: %v\n%s", err, stdout.String())
	}
	t.Logf("report: %s", stdout.String())
	if rep.Connected != 50 || rep.Posted == 0 || rep.Expected == 0 || rep.Deliveries != rep.Expected {
		t.Errorf("connected %d, posted %d, deliveries %d of %d: want 50, some, all of some",
			rep.Connected, rep.Posted, rep.Deliveries, rep.Expected)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.OutOfOrder != 0 || rep.Reconnects != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, reconnects %d: want none (last error %q)",
			rep.Lost, rep.Duplicated, rep.OutOfOrder, rep.Reconnects, rep.LastError)
	}
	if len(rep.Nodes) != 2 {
		t.Fatalf("nodes = %+v, want 2", rep.Nodes)
	}
	for _, n := range rep.Nodes {
		if n.URL != u || n.End.RSSBytes <= 0 || n.End.Goroutines <= 0 {
			t.Errorf("node %+v: want %s with its figures read", n, u)
		}
	}
	if rep.ServerEnd.RSSBytes != rep.Nodes[0].End.RSSBytes+rep.Nodes[1].End.RSSBytes {
		t.Errorf("RSS at the end %d, nodes %+v: want the sum", rep.ServerEnd.RSSBytes, rep.Nodes)
	}
}
