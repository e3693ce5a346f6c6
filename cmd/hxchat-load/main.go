// Command hxchat-load puts an hxchat server under load: N SSE subscribers
// spread over R rooms (read the way a browser reads them, resuming with
// Last-Event-ID when dropped) and M posters at a total rate, for a bounded
// duration. It reports connect time, deliveries per second, post-to-receive
// latency, messages lost, duplicated and out of order, reconnects (unplanned
// ones apart from the churn asked for with -reconnect-rate), and the
// server's memory and goroutines from its /metrics: before, once connected,
// at the end, and every -sample while posting, with how flat they stayed
// after -settle (the soak's criterion).
//
// -url may name several nodes of one deployment (nodes sharing a store, so
// that a message posted on one is delivered by all), comma-separated:
// subscriber i then reads from node i mod n and poster j posts to node
// j mod n, and the server figures are summed over the nodes (each node's
// own are in the JSON report's "nodes").
//
// Accounting: every message text carries the run, its poster, a per-poster
// counter and its send time ("load rRUN pP nN tUNIXNANOS"). A message the
// server answered 303 for must reach every subscriber of its room that was
// connected (had its response headers) before the message was sent; one
// that did not is lost. An event whose seq was already received, or whose
// message was, is a duplicate; a seq lower than the highest one received
// before is out of order. Latency is receive time minus send time, of the
// first receipt of each message at each subscriber. A subscriber that is
// churned or dropped resumes with Last-Event-ID, so the same rules hold
// across its streams: every message after the cursor exactly once.
//
// With -serve-yardstick ADDR the tool loads nothing: it serves the
// yardstick (internal/yardstick: a minimal SSE broadcaster per room behind
// the URLs this tool uses) on ADDR until interrupted, so that the same load
// can be run against it and against hxchat and the two compared.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hxchat-load:", err)
		os.Exit(1)
	}
}

type options struct {
	url            string   // as reported: the base URLs, comma-separated
	urls           []string // the base URLs, each without a trailing slash
	subscribers    int
	rooms          int
	roomPrefix     string
	posters        int
	rate           float64
	duration       time.Duration
	warmup         time.Duration
	connectTimeout time.Duration
	drain          time.Duration
	progress       time.Duration
	json           bool
	allowRemote    bool
	reconnectRate  float64
	churnPause     time.Duration
	sample         time.Duration
	settle         time.Duration
	cpuProfile     string
	serveYardstick string
}

// hiddenFlags are left out of -help: tools for working on the load tool
// itself, not for load testing.
var hiddenFlags = map[string]bool{"cpuprofile": true}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("hxchat-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base URL of the hxchat server; several nodes sharing one store: their URLs, comma-separated (subscriber i reads from node i mod n, poster j posts to node j mod n)")
	fs.IntVar(&o.subscribers, "subscribers", 100, "SSE subscribers, spread evenly over the rooms")
	fs.IntVar(&o.rooms, "rooms", 1, "rooms")
	fs.StringVar(&o.roomPrefix, "room-prefix", "load", "rooms are named PREFIX-0, PREFIX-1, …")
	fs.IntVar(&o.posters, "posters", 4, "posters; each posts to the rooms in turn")
	fs.Float64Var(&o.rate, "rate", 20, "messages a second, all posters together")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the posting phase lasts: posters post, churn and samples run (also without posters)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "pause between the subscribers' connecting and the first post")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 30*time.Second, "bound on connecting all subscribers, and on each connect")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "after the last post, the most to wait for messages still on their way")
	fs.DurationVar(&o.progress, "progress", time.Second, "interval of the progress line on stderr (0: none)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.Float64Var(&o.reconnectRate, "reconnect-rate", 0, "fraction of the subscribers that close their stream on purpose and resume (Last-Event-ID) each minute, spread evenly over the minute, while posting (0.05: 5 %)")
	fs.DurationVar(&o.churnPause, "churn-pause", 0, "how long a churned subscriber waits before it reconnects (0: at once, as a page reopening its EventSource)")
	fs.DurationVar(&o.sample, "sample", 10*time.Second, "interval of the server's RSS and goroutine samples while posting")
	fs.DurationVar(&o.settle, "settle", 5*time.Minute, "samples before this much posting time are left out of the flatness figures (at most half of -duration)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the load tool's own CPU profile to this file")
	fs.StringVar(&o.serveYardstick, "serve-yardstick", "", "load nothing: serve the yardstick (a minimal SSE broadcaster per room, the measure for hxchat's fan-out) on this address until interrupted, for another run's -url")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage of hxchat-load:")
		// PrintDefaults of a copy that lacks the hidden flags.
		shown := flag.NewFlagSet("", flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if !hiddenFlags[f.Name] {
				shown.Var(f.Value, f.Name, f.Usage)
			}
		})
		shown.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case o.subscribers < 0, o.posters < 0:
		return o, errors.New("-subscribers and -posters must not be negative")
	case o.rooms <= 0:
		return o, errors.New("-rooms must be positive")
	case o.posters > 0 && !(o.rate > 0 && o.rate < 1e6):
		return o, errors.New("-rate must be positive (and below a million)")
	case o.duration <= 0:
		return o, errors.New("-duration must be positive")
	case o.warmup < 0, o.drain < 0, o.progress < 0:
		return o, errors.New("-warmup, -drain and -progress must not be negative")
	case o.connectTimeout <= 0:
		return o, errors.New("-connect-timeout must be positive")
	case !(o.reconnectRate >= 0 && o.reconnectRate <= 1e6):
		return o, errors.New("-reconnect-rate must be 0 or positive (and at most a million)")
	case o.churnPause < 0:
		return o, errors.New("-churn-pause must not be negative")
	case o.sample <= 0:
		return o, errors.New("-sample must be positive")
	case o.settle < 0:
		return o, errors.New("-settle must not be negative")
	}
	if o.serveYardstick != "" {
		host, _, err := net.SplitHostPort(o.serveYardstick)
		if err != nil {
			return o, fmt.Errorf("-serve-yardstick %q: %w", o.serveYardstick, err)
		}
		if !o.allowRemote && !isLoopback(host) {
			return o, fmt.Errorf("-serve-yardstick %q is not a loopback address: serve other machines only with -allow-remote", o.serveYardstick)
		}
	}
	urls, err := parseURLs(o.url, o.allowRemote)
	if err != nil {
		return o, err
	}
	o.urls, o.url = urls, strings.Join(urls, ",")
	return o, nil
}

// parseURLs splits -url at commas and checks and normalizes each base URL:
// http or https, a host, loopback unless allowRemote, no trailing slash.
// The same URL may come more than once (it then takes that many shares).
func parseURLs(list string, allowRemote bool) ([]string, error) {
	var urls []string
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("-url %q: want http:// or https:// and a host", raw)
		}
		if !allowRemote && !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("-url %q is not a loopback address: load another machine only with -allow-remote", raw)
		}
		urls = append(urls, strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"))
	}
	return urls, nil
}

// isLoopback reports whether host is localhost or a loopback address
// (127.0.0.0/8, ::1); names other than localhost are not resolved.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loader is one run.
type loader struct {
	o         options
	bases     []string // the nodes' base URLs (-url); at least one
	t         *tracker
	dialer    *net.Dialer  // the subscribers' streams (openStream)
	tlsConfig *tls.Config  // of https streams; nil: the system's roots (tests set their own)
	postClnt  *http.Client // posts, /healthz and /metrics

	errMu   sync.Mutex
	lastErr string
}

func (l *loader) roomName(i int) string {
	return url.PathEscape(l.o.roomPrefix + "-" + strconv.Itoa(i))
}

func (l *loader) note(err error) {
	l.errMu.Lock()
	l.lastErr = err.Error()
	l.errMu.Unlock()
}

// node returns the base URL of node i (subscriber or poster i's: i mod n).
func (l *loader) node(i int) string { return l.bases[i%len(l.bases)] }

// serverStats are the server's process metrics at one moment.
type serverStats struct {
	RSSBytes   int64 `json:"rss_bytes"`
	Goroutines int64 `json:"goroutines"`
}

// scrape reads the server's metrics: of every node, at the same time, and
// their sum (a value missing on one node is missing from the sum: -1).
func (l *loader) scrape(ctx context.Context) serverStats {
	sum, _ := l.scrapeNodes(ctx)
	return sum
}

// scrapeNodes is scrape with each node's own figures too, in -url order.
func (l *loader) scrapeNodes(ctx context.Context) (serverStats, []serverStats) {
	each := make([]serverStats, len(l.bases))
	if len(l.bases) == 1 {
		each[0] = l.scrapeNode(ctx, l.bases[0])
		return each[0], each
	}
	var wg sync.WaitGroup
	for i, base := range l.bases {
		wg.Go(func() { each[i] = l.scrapeNode(ctx, base) })
	}
	wg.Wait()
	return sumStats(each), each
}

// sumStats adds up the nodes' figures; a value missing on one (-1) is
// missing from the sum.
func sumStats(each []serverStats) serverStats {
	var sum serverStats
	for _, st := range each {
		if sum.RSSBytes >= 0 {
			sum.RSSBytes = addKnown(sum.RSSBytes, st.RSSBytes)
		}
		if sum.Goroutines >= 0 {
			sum.Goroutines = addKnown(sum.Goroutines, st.Goroutines)
		}
	}
	return sum
}

func addKnown(a, b int64) int64 {
	if a < 0 || b < 0 {
		return -1
	}
	return a + b
}

// scrapeNode reads process_resident_memory_bytes and go_goroutines from
// one node's /metrics; missing values are -1.
func (l *loader) scrapeNode(ctx context.Context, base string) serverStats {
	st := serverStats{RSSBytes: -1, Goroutines: -1}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return st
	}
	resp, err := l.postClnt.Do(req)
	if err != nil {
		l.note(err)
		return st
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// An error page has no metrics: the values stay unknown, and the
		// reason is in the report.
		l.note(fmt.Errorf("/metrics: %w", errStatus(resp.StatusCode)))
		return st
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			st.RSSBytes = int64(f)
		case "go_goroutines":
			st.Goroutines = int64(f)
		}
	}
	return st
}

// quantiles is a latency summary in milliseconds.
type quantiles struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	N   uint64  `json:"count"`
}

func summarize(h *histogram) quantiles {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return quantiles{
		P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)), P99: ms(h.quantile(0.99)),
		Max: ms(time.Duration(h.max.Load())), N: h.count(),
	}
}

// nodeStats is one node's share of the server figures, in a run against
// several (-url with commas); the report's own are their sums.
type nodeStats struct {
	URL       string      `json:"url"`
	Before    serverStats `json:"server_before"`
	Connected serverStats `json:"server_connected"`
	End       serverStats `json:"server_end"`
}

// report is the result of a run (the -json output).
type report struct {
	URL              string      `json:"url"`
	Nodes            []nodeStats `json:"nodes,omitempty"` // more than one -url only
	Subscribers      int         `json:"subscribers"`
	Rooms            int         `json:"rooms"`
	Posters          int         `json:"posters"`
	Rate             float64     `json:"rate"`
	DurationSeconds  float64     `json:"duration_s"`
	Connected        int64       `json:"connected"`
	ConnectErrors    int64       `json:"connect_errors"`
	ConnectSeconds   float64     `json:"connect_phase_s"`
	ConnectTime      quantiles   `json:"connect_time"`
	Posted           int64       `json:"posted"`
	PostErrors       int64       `json:"post_errors"`
	PostsPerSecond   float64     `json:"posts_per_s"`
	Expected         int64       `json:"expected_deliveries"`
	Deliveries       int64       `json:"deliveries"`
	DeliveriesPerSec float64     `json:"deliveries_per_s"`
	Latency          quantiles   `json:"latency"`
	Lost             int64       `json:"lost"`
	Duplicated       int64       `json:"duplicated"`
	OutOfOrder       int64       `json:"out_of_order"`
	Reconnects       int64       `json:"reconnects"` // unplanned: the stream ended or failed
	ReconnectRate    float64     `json:"reconnect_rate"`
	Churned          int64       `json:"churned"` // planned: closed on purpose by -reconnect-rate
	ServerBefore     serverStats `json:"server_before"`
	ServerConnected  serverStats `json:"server_connected"`
	ServerEnd        serverStats `json:"server_end"`
	BytesPerSub      float64     `json:"server_bytes_per_subscriber"` // -1 if unknown
	Samples          []sample    `json:"server_samples"`
	Flatness         flatness    `json:"server_flatness"`
	LoadCPUSeconds   float64     `json:"load_cpu_s"`               // this tool's own CPU time (user + system), -1 if unknown
	LoadCPUPerDeliv  float64     `json:"load_cpu_us_per_delivery"` // the same per delivery, in µs
	LastError        string      `json:"last_error,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.serveYardstick != "" {
		return serveYardstick(ctx, o.serveYardstick, stdout)
	}
	dialer := &net.Dialer{Timeout: o.connectTimeout, KeepAlive: 30 * time.Second}
	postTr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: max(o.posters+2, 2), // per node: more than it needs
		IdleConnTimeout:     90 * time.Second,
	}
	defer postTr.CloseIdleConnections()
	l := &loader{
		o: o, bases: o.urls, t: newTracker(rand.Text()[:8]),
		dialer: dialer,
		postClnt: &http.Client{Transport: postTr, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	t := l.t
	rep := report{URL: o.url, Subscribers: o.subscribers, Rooms: o.rooms, Posters: o.posters, Rate: o.rate,
		DurationSeconds: o.duration.Seconds(), ReconnectRate: o.reconnectRate}
	cpuStart := cpuTime()

	// The server must answer before anything else.
	if err := l.health(ctx); err != nil {
		return err
	}
	var nodesBefore, nodesConnected, nodesEnd []serverStats
	rep.ServerBefore, nodesBefore = l.scrapeNodes(ctx)

	var phase atomic.Value
	phase.Store("connect")
	start := time.Now()
	stopProgress := l.progressLine(stderr, &phase, start)
	defer stopProgress()

	// Subscribers.
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	subs := make([]*subState, o.subscribers)
	var wg sync.WaitGroup
	allIn := make(chan struct{})
	// n is t.connected after this subscriber's first connect: each value
	// comes once, so allIn is closed once.
	connected := func(n int64) {
		if n == int64(o.subscribers) {
			close(allIn)
		}
	}
	if o.subscribers == 0 {
		close(allIn)
	}
	for i := range subs {
		s := &subState{room: i % o.rooms, node: i % len(l.bases)}
		subs[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.subscriber(subCtx, s, connected)
		}()
	}
	connectStart := time.Now()
	select {
	case <-allIn:
	case <-time.After(o.connectTimeout):
	case <-ctx.Done():
	}
	rep.ConnectSeconds = time.Since(connectStart).Seconds()
	phase.Store("warmup")
	sleep(ctx, o.warmup)
	rep.ServerConnected, nodesConnected = l.scrapeNodes(ctx)

	// Posters, and with them the churn and the server samples: both are
	// about the server under load.
	phase.Store("post")
	postStart := time.Now()
	postCtx, stopPosts := context.WithTimeout(ctx, o.duration)
	var churning sync.WaitGroup
	churning.Go(func() { l.churner(postCtx, subs) })
	var pw sync.WaitGroup
	samplesDone := make(chan []sample, 1)
	go func() { samplesDone <- l.sampler(ctx, postCtx, postStart, rep.ServerConnected) }()
	for i := range o.posters {
		pw.Add(1)
		go func() {
			defer pw.Done()
			l.poster(postCtx, i)
		}()
	}
	pw.Wait()
	// The posting phase lasts -duration even without posters (an idle
	// run): the churn and the samples need it.
	<-postCtx.Done()
	stopPosts()
	churning.Wait()
	postElapsed := time.Since(postStart)
	rep.Samples = append(<-samplesDone, sample{Seconds: postElapsed.Seconds(), serverStats: l.scrape(ctx)})

	// Drain: wait until every expected message arrived, or -drain.
	phase.Store("drain")
	drainEnd := time.Now().Add(o.drain)
	for time.Now().Before(drainEnd) && ctx.Err() == nil {
		if !t.anyMissing(subs) {
			break
		}
		sleep(ctx, 50*time.Millisecond)
	}
	rep.ServerEnd, nodesEnd = l.scrapeNodes(ctx)
	if len(l.bases) > 1 {
		for i, base := range l.bases {
			rep.Nodes = append(rep.Nodes, nodeStats{URL: base, Before: nodesBefore[i], Connected: nodesConnected[i], End: nodesEnd[i]})
		}
	}
	stopSubs()
	wg.Wait()
	stopProgress()

	rep.Connected = t.connected.Load()
	rep.ConnectErrors = t.connectErrors.Load()
	rep.ConnectTime = summarize(&t.connect)
	rep.Posted = t.posted.Load()
	rep.PostErrors = t.postErrors.Load()
	rep.PostsPerSecond = float64(rep.Posted) / postElapsed.Seconds()
	rep.Expected, rep.Lost = t.expectedAndLost(subs)
	rep.Deliveries = int64(t.latency.count())
	// Deliveries a second: over the time from the first post to the last
	// first receipt (the posting time at least).
	span := postElapsed
	if last := lastDelivery(subs); !last.IsZero() {
		span = max(span, last.Sub(postStart))
	}
	rep.DeliveriesPerSec = float64(rep.Deliveries) / span.Seconds()
	rep.Latency = summarize(&t.latency)
	rep.Duplicated = t.duplicates.Load()
	rep.OutOfOrder = t.outOrder.Load()
	rep.Reconnects = t.reconnects.Load()
	rep.Churned = t.churned.Load()
	rep.Flatness = flat(rep.Samples, min(o.settle, o.duration/2))
	rep.LoadCPUSeconds, rep.LoadCPUPerDeliv = -1, -1
	if c := cpuTime(); c >= 0 && cpuStart >= 0 {
		rep.LoadCPUSeconds = (c - cpuStart).Seconds()
		if rep.Deliveries > 0 {
			rep.LoadCPUPerDeliv = float64((c - cpuStart).Microseconds()) / float64(rep.Deliveries)
		}
	}
	// Memory per subscriber: the RSS growth from before connecting to once
	// connected. A run without posts measures idle streams, and then the
	// end sample is the one: by the end of the posting time the garbage of
	// the connect burst is collected, as on a server whose streams idle,
	// while just after connecting it still inflates the RSS.
	rep.BytesPerSub = -1
	after := rep.ServerConnected.RSSBytes
	if idleRun(o) {
		after = rep.ServerEnd.RSSBytes
	}
	if o.subscribers > 0 && rep.ServerBefore.RSSBytes >= 0 && after >= 0 {
		rep.BytesPerSub = float64(after-rep.ServerBefore.RSSBytes) / float64(o.subscribers)
	}
	rep.LastError = l.lastErr
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return writeTable(stdout, rep)
}

// idleRun reports whether the run posts nothing: its streams only idle.
func idleRun(o options) bool { return o.posters == 0 || o.rate == 0 }

// health waits briefly for every node's /healthz to answer 200.
func (l *loader) health(ctx context.Context) error {
	for _, base := range l.bases {
		if err := l.healthNode(ctx, base); err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) healthNode(ctx context.Context, base string) error {
	var last error
	for range 20 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := l.postClnt.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errStatus(resp.StatusCode)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("%s/healthz: %w", base, last)
}

// poster posts at its share of the rate until ctx ends, each message to
// the next room in turn; posts still in flight then are finished.
func (l *loader) poster(ctx context.Context, i int) {
	interval := time.Duration(float64(time.Second) * float64(l.o.posters) / l.o.rate)
	base := l.node(i)
	// Stagger the posters evenly over one interval.
	sleep(ctx, interval*time.Duration(i)/time.Duration(l.o.posters))
	next := time.Now()
	for n := 0; ctx.Err() == nil; n++ {
		room := (i + n) % l.o.rooms
		sent := time.Now()
		form := url.Values{"message": {l.t.text(i, n, sent)}}
		u := base + "/chat/" + l.roomName(room) + "/messages"
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, u, strings.NewReader(form.Encode()))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := l.postClnt.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				err = fmt.Errorf("post: %w", errStatus(resp.StatusCode))
			}
		}
		if err != nil {
			l.t.postErrors.Add(1)
			l.note(err)
		} else {
			l.t.acked(i, n, room, sent)
		}
		// Open loop: keep the schedule; a poster that fell behind posts at
		// once until it caught up.
		next = next.Add(interval)
		sleep(ctx, time.Until(next))
	}
}

// progressLine prints a status line to stderr every -progress until the
// returned func is called.
func (l *loader) progressLine(w io.Writer, phase *atomic.Value, start time.Time) func() {
	if l.o.progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(l.o.progress)
		defer tk.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintln(w)
				return
			case <-tk.C:
				t := l.t
				fmt.Fprintf(w, "\r%5.1fs %-7s subs %d/%d open %d  posted %d (err %d)  delivered %d  reconnects %d churned %d  lat p99 %.1fms   ",
					time.Since(start).Seconds(), phase.Load(), t.connected.Load(), l.o.subscribers, t.open.Load(),
					t.posted.Load(), t.postErrors.Load(), t.latency.count(), t.reconnects.Load(), t.churned.Load(),
					float64(t.latency.quantile(0.99).Microseconds())/1000)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

func writeTable(w io.Writer, r report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	mb := func(b int64) string {
		if b < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	g := func(n int64) string {
		if n < 0 {
			return "n/a"
		}
		return strconv.FormatInt(n, 10)
	}
	q := func(x quantiles) string {
		return fmt.Sprintf("p50 %.1f  p90 %.1f  p99 %.1f  max %.1f ms  (n=%d)", x.P50, x.P90, x.P99, x.Max, x.N)
	}
	perSub := "n/a"
	if r.BytesPerSub >= 0 {
		growth := "while connecting"
		if idleRun(options{posters: r.Posters, rate: r.Rate}) {
			growth = "from before connecting to the end"
		}
		perSub = fmt.Sprintf("%.1f KiB (RSS growth %s / subscribers)", r.BytesPerSub/1024, growth)
	}
	sumOf := "" // a run against several nodes reports their sums
	if n := len(r.Nodes); n > 1 {
		sumOf = fmt.Sprintf(" (%d nodes)", n)
	}
	rows := [][2]string{
		{"target", r.URL},
		{"load", fmt.Sprintf("%d subscribers in %d rooms, %d posters at %g msg/s for %gs", r.Subscribers, r.Rooms, r.Posters, r.Rate, r.DurationSeconds)},
		{"connected", fmt.Sprintf("%d/%d in %.2fs (%d connect errors)", r.Connected, r.Subscribers, r.ConnectSeconds, r.ConnectErrors)},
		{"connect time", q(r.ConnectTime)},
		{"posted", fmt.Sprintf("%d (%.1f/s), %d errors", r.Posted, r.PostsPerSecond, r.PostErrors)},
		{"deliveries", fmt.Sprintf("%d of %d expected (%.0f/s)", r.Deliveries, r.Expected, r.DeliveriesPerSec)},
		{"latency", q(r.Latency)},
		{"lost", strconv.FormatInt(r.Lost, 10)},
		{"duplicated", strconv.FormatInt(r.Duplicated, 10)},
		{"out of order", strconv.FormatInt(r.OutOfOrder, 10)},
		{"reconnects", fmt.Sprintf("%d unplanned, %d churned (planned: %g %% of the subscribers a minute)", r.Reconnects, r.Churned, r.ReconnectRate*100)},
		{"server RSS" + sumOf, fmt.Sprintf("%s before, %s connected, %s at end", mb(r.ServerBefore.RSSBytes), mb(r.ServerConnected.RSSBytes), mb(r.ServerEnd.RSSBytes))},
		{"server goroutines" + sumOf, fmt.Sprintf("%s before, %s connected, %s at end", g(r.ServerBefore.Goroutines), g(r.ServerConnected.Goroutines), g(r.ServerEnd.Goroutines))},
		{"memory/subscriber", perSub},
		{"flatness", r.Flatness.String()},
		{"load tool CPU", loadCPU(r)},
	}
	if r.LastError != "" {
		rows = append(rows, [2]string{"last error", r.LastError})
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}
