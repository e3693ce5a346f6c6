package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
	"github.com/hxchat/hxchat/chat/storetest"
)

// waitTimeout bounds every wait for something to arrive.
const waitTimeout = 10 * time.Second

var prefixes atomic.Int64

// freshPrefix returns a key prefix no other store of this test binary uses.
func freshPrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

// testOptions are quick to notice a dead connection.
func testOptions() Options {
	return Options{KeyPrefix: freshPrefix(), HealthInterval: 300 * time.Millisecond}
}

// open opens a Store and closes it when the test ends.
func open(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawClient is a plain go-redis client for looking behind the Store's back.
func rawClient(t testing.TB, url string) *goredis.Client {
	t.Helper()
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	o.Protocol = 2
	c := goredis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func msg(room, text string) chat.Message {
	return chat.Message{Room: room, Author: "tester", Text: text, Time: time.Date(2025, 3, 14, 15, 9, 26, 535_000_001, time.UTC)}
}

func appendN(t testing.TB, s *Store, room string, n int) []int64 {
	t.Helper()
	var seqs []int64
	for i := range n {
		m, err := s.Append(context.Background(), msg(room, fmt.Sprintf("%s %d", room, i)))
		if err != nil {
			t.Fatalf("Append(%q) #%d: %v", room, i, err)
		}
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func span(from, to int64) []int64 {
	out := []int64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// collector records what a watcher is called with, and whether it was
// ever called concurrently with itself.
type collector struct {
	in      atomic.Int32
	overlap atomic.Bool
	mu      sync.Mutex
	msgs    []chat.Message
}

func (c *collector) fn(m chat.Message) {
	if c.in.Add(1) != 1 {
		c.overlap.Store(true)
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	c.in.Add(-1)
}

func (c *collector) epochs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = m.Epoch
	}
	return out
}

func (c *collector) seqs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int64, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = m.Seq
	}
	return out
}

// wait waits until the watcher has been called n times (or fails the test
// after waitTimeout) and returns the seqs it was given.
func (c *collector) wait(t testing.TB, what string, n int) []int64 {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := c.seqs()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages delivered within %v, want %d; the last: %v", what, len(got), waitTimeout, n, tail(got))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// check waits for len(want) deliveries and fails the test unless they are
// exactly want, in order, none concurrent with another.
func (c *collector) check(t testing.TB, what string, want []int64) {
	t.Helper()
	got := c.wait(t, what, len(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s: delivered %d messages %v, want exactly %v in order", what, len(got), summary(got), summary(want))
	}
	if c.overlap.Load() {
		t.Errorf("%s: watcher was called concurrently with itself", what)
	}
}

func tail(s []int64) []int64 { return s[max(0, len(s)-5):] }

func summary(s []int64) string {
	if len(s) <= 12 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v…%v", s[:6], s[len(s)-6:])
}

// waitUntil polls cond until it holds, failing the test after waitTimeout.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStoreContract(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	storetest.Run(t, func(t *testing.T, retention int) chat.Store {
		s, err := Open(t.Context(), srv.URL(), Options{Retention: retention, KeyPrefix: freshPrefix()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestOpenUnreachable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	url := srv.URL()
	srv.Stop() // nothing listens on the port now
	start := time.Now()
	s, err := Open(t.Context(), url, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open on a stopped server succeeded")
	}
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Open on a stopped server: %v, want an error wrapping chat.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open on a stopped server took %v, want it to fail fast", d)
	}
}

func TestOpenBadURLHidesPassword(t *testing.T) {
	for _, url := range []string{"http://user:s3cret@127.0.0.1:1/0", "redis://user:s3cret@127.0.0.1:1/notadb"} {
		s, err := Open(t.Context(), url, Options{})
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", url)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error shows the password: %v", url, err)
		}
	}
}

// TestLayout pins the keys, the stream entries and the published payload:
// other tools and older nodes read them.
func TestLayout(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	const retention = 3
	s := open(t, srv.URL(), Options{Retention: retention, KeyPrefix: "lay:"})
	room := "한국어-7"
	bucket := "{b" + strconv.Itoa(bucketOf(room)) + "}" // of the rooms indexes
	ps := raw.Subscribe(t.Context(), "lay:db0:room:{"+room+"}:live")
	defer ps.Close()
	if _, err := ps.Receive(t.Context()); err != nil { // the subscribe confirmation
		t.Fatal(err)
	}
	in := msg(room, `say "hi" </script> 😀`)
	in.Author = "Zoë"
	in.AuthorKey = "0123456789ab"
	var epoch string
	for range 5 {
		m, err := s.Append(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		epoch = m.Epoch
	}
	if got, err := raw.Get(t.Context(), "lay:room:{"+room+"}:seq").Result(); err != nil || got != "5" {
		t.Errorf("seq key = %q, %v; want \"5\"", got, err)
	}
	if got, err := raw.Get(t.Context(), "lay:room:{"+room+"}:epoch").Result(); err != nil || got != epoch || epoch == "" {
		t.Errorf("epoch key = %q, %v; want %q, the epoch Append returned", got, err, epoch)
	}
	// Five appends in one millisecond: the activity moves by 1 ms each.
	wantActive := strconv.FormatInt(in.Time.UnixMilli()+4, 10)
	if got, err := raw.Get(t.Context(), "lay:room:{"+room+"}:active").Result(); err != nil || got != wantActive {
		t.Errorf("active key = %q, %v; want %q", got, err, wantActive)
	}
	// The index's score: the first append's (the others came within
	// indexEvery: throttled).
	wantScore := strconv.FormatInt(in.Time.UnixMilli(), 10)
	if got, err := raw.ZScore(t.Context(), "lay:rooms:"+bucket, room).Result(); err != nil || strconv.FormatFloat(got, 'f', -1, 64) != wantScore {
		t.Errorf("rooms index score = %v, %v; want %s", got, err, wantScore)
	}
	defer s.Presence().Join(room, chat.Member{Key: in.AuthorKey, Name: in.Author})()
	waitUntil(t, "the room in its bucket of the presence index", func() bool {
		got, err := raw.ZScore(t.Context(), "lay:presence-rooms:"+bucket, room).Result()
		return err == nil && got > float64(time.Now().UnixMilli())
	})
	if n, err := raw.ZCard(t.Context(), "lay:presence:{"+room+"}").Result(); err != nil || n != 1 {
		t.Errorf("presence set holds %d, %v; want 1 entry", n, err)
	}
	xs, err := raw.XRange(t.Context(), "lay:room:{"+room+"}:log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range xs {
		ids = append(ids, x.ID)
	}
	if want := []string{"3-0", "4-0", "5-0"}; !slices.Equal(ids, want) {
		t.Errorf("stream ids = %v, want %v (trimmed to the retention of %d)", ids, want, retention)
	}
	if len(xs) > 0 {
		want := map[string]any{"author": in.Author, "key": in.AuthorKey, "text": in.Text, "time": in.Time.Format(time.RFC3339Nano)}
		if fmt.Sprint(xs[0].Values) != fmt.Sprint(want) {
			t.Errorf("stream entry fields = %v, want %v", xs[0].Values, want)
		}
	}
	m, err := ps.ReceiveMessage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got liveMessage
	if err := json.Unmarshal([]byte(m.Payload), &got); err != nil {
		t.Fatalf("payload %q: %v", m.Payload, err)
	}
	if want := (liveMessage{Seq: 1, Epoch: epoch, Author: in.Author, Key: in.AuthorKey, Text: in.Text, Time: in.Time.Format(time.RFC3339Nano)}); got != want {
		t.Errorf("published %+v, want %+v", got, want)
	}
}

// TestAppendRecoversLostCounter: a counter deleted (or evicted) while its
// stream survives continues after the stream's newest entry.
func TestAppendRecoversLostCounter(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(), testOptions())
	appendN(t, s, "lobby", 4)
	if err := rawClient(t, srv.URL()).Del(t.Context(), s.keys("lobby").seq).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := s.Append(t.Context(), msg("lobby", "after"))
	if err != nil {
		t.Fatalf("Append after the counter was lost: %v", err)
	}
	if m.Seq != 5 {
		t.Errorf("Append after the counter was lost: seq %d, want 5", m.Seq)
	}
}

func TestWatchAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	opts := testOptions()
	a, b := open(t, srv.URL(), opts), open(t, srv.URL(), opts)
	appendN(t, a, "lobby", 3) // before Watch: not delivered
	var onA, onB collector
	defer a.Watch("lobby", onA.fn)()
	defer b.Watch("lobby", onB.fn)()
	in := msg("lobby", "hello from A")
	in.Author = "alice"
	in.AuthorKey = "a11ce0000000"
	sent, err := a.Append(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	onB.check(t, "watcher on B", []int64{4})
	onA.check(t, "watcher on A", []int64{4})
	onB.mu.Lock()
	got := onB.msgs[0]
	onB.mu.Unlock()
	if got.Room != sent.Room || got.Seq != sent.Seq || got.Epoch != sent.Epoch || sent.Epoch == "" || got.Author != sent.Author || got.AuthorKey != sent.AuthorKey || got.Text != sent.Text || !got.Time.Equal(sent.Time) {
		t.Errorf("B received %+v, want %+v", got, sent)
	}
}

// TestWatchConcurrentNodes: four posters on two nodes, one room; watchers on
// both nodes see every seq once, in order.
func TestWatchConcurrentNodes(t *testing.T) {
	const posters, each = 4, 500
	srv := redistest.Start(t, redistest.Options{})
	opts := testOptions()
	nodes := []*Store{open(t, srv.URL(), opts), open(t, srv.URL(), opts)}
	var watchers [2]collector
	for i, n := range nodes {
		defer n.Watch("crowd", watchers[i].fn)()
	}
	// Another room on the same connection must not disturb the order.
	var aside collector
	defer nodes[1].Watch("aside", aside.fn)()
	var wg sync.WaitGroup
	errs := make(chan error, posters*each)
	for p := range posters {
		wg.Go(func() {
			for i := range each {
				if _, err := nodes[p%2].Append(t.Context(), msg("crowd", fmt.Sprintf("p%d-%d", p, i))); err != nil {
					errs <- err
				}
				if p == 0 && i%50 == 0 {
					if _, err := nodes[0].Append(t.Context(), msg("aside", "x")); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	for i := range watchers {
		watchers[i].check(t, fmt.Sprintf("watcher on node %d", i), span(1, posters*each))
	}
	aside.check(t, "watcher of the other room", span(1, each/50))
}

func TestWatchStop(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(), testOptions())
	var stopped, marker collector
	stop := s.Watch("lobby", stopped.fn)
	defer s.Watch("lobby", marker.fn)()
	appendN(t, s, "lobby", 1)
	stopped.check(t, "watcher before stop", []int64{1})
	stop()
	stop() // a second call is harmless
	appendN(t, s, "lobby", 1)
	marker.check(t, "other watcher", []int64{1, 2}) // seq 2 has been delivered
	if got := stopped.seqs(); !slices.Equal(got, []int64{1}) {
		t.Errorf("stopped watcher got %v, want only [1]", got)
	}
}

// TestWatchStopFromFn: fn may stop its own watch (a hub dropping its last
// subscriber does).
func TestWatchStopFromFn(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(), testOptions())
	var (
		stop  func()
		ready = make(chan struct{})
		calls atomic.Int32
	)
	stop = s.Watch("lobby", func(chat.Message) {
		<-ready
		calls.Add(1)
		stop()
	})
	close(ready)
	var marker collector
	defer s.Watch("lobby", marker.fn)()
	appendN(t, s, "lobby", 2)
	marker.check(t, "other watcher", []int64{1, 2})
	if got := calls.Load(); got != 1 {
		t.Errorf("self-stopping watcher called %d times, want 1", got)
	}
}

// TestWatchUnsubscribes: each node listens only for rooms it watches.
func TestWatchUnsubscribes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	numsub := func(room string) int64 {
		ch := s.keys(room).live
		n, err := raw.PubSubNumSub(t.Context(), ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[ch]
	}
	waitNumsub := func(room string, want int64) {
		t.Helper()
		waitUntil(t, fmt.Sprintf("PUBSUB NUMSUB of %q reaching %d", room, want), func() bool { return numsub(room) == want })
	}
	var c collector
	stopX1 := s.Watch("x", c.fn)
	stopX2 := s.Watch("x", c.fn)
	stopY := s.Watch("y", c.fn)
	defer stopY()
	waitNumsub("x", 1) // one connection for both watchers
	waitNumsub("y", 1)
	stopX1()
	// Still watched: prove the subscription stays by a delivery after it.
	var marker collector
	stopMarker := s.Watch("x", marker.fn)
	appendN(t, s, "x", 1)
	marker.check(t, "watcher of x", []int64{1})
	if n := numsub("x"); n != 1 {
		t.Errorf("NUMSUB of x with watchers left = %d, want 1", n)
	}
	stopX2()
	stopMarker()
	waitNumsub("x", 0)
	if n := numsub("y"); n != 1 {
		t.Errorf("NUMSUB of y, still watched = %d, want 1", n)
	}
	// Watched again: subscribed again, delivering from now.
	var again collector
	defer s.Watch("x", again.fn)()
	waitNumsub("x", 1)
	appendN(t, s, "x", 1)
	again.check(t, "watcher of x, watched again", []int64{2})
}

// TestWatchFillsGap: a message missing from the channel (its PUBLISH lost)
// is read from the stream as soon as the next one shows the gap.
func TestWatchFillsGap(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	s := open(t, srv.URL(), testOptions())
	var c collector
	defer s.Watch("lobby", c.fn)()
	appendN(t, s, "lobby", 1)
	c.check(t, "before the gap", []int64{1})
	// Seq 2 stored without being published.
	k := s.keys("lobby")
	if err := raw.XAdd(t.Context(), &goredis.XAddArgs{Stream: k.log, ID: "2-0", Values: []any{"author", "x", "text", "lobby 2", "time", time.Now().Format(time.RFC3339Nano)}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Set(t.Context(), k.seq, 2, 0).Err(); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "lobby", 1)
	c.check(t, "after the gap", []int64{1, 2, 3})
}

// TestWatchCatchesUpAfterCut: messages stored while a node's fan-out
// connection is cut reach its watchers once it is back, exactly once, in
// order, before the live ones.
func TestWatchCatchesUpAfterCut(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	a := open(t, proxy.URL(), opts) // the watching node, behind the proxy
	b := open(t, srv.URL(), opts)   // the posting node
	var c, other collector
	defer a.Watch("lobby", c.fn)()
	defer a.Watch("other", other.fn)()
	appendN(t, b, "lobby", 3)
	c.check(t, "before the cut", span(1, 3))

	proxy.Cut()
	if err := a.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ping with the connection cut = %v, want an error wrapping chat.ErrUnavailable", err)
	}
	appendN(t, b, "lobby", 4) // 4..7, stored while A cannot hear
	appendN(t, b, "other", 2)
	if got := c.seqs(); len(got) != 3 {
		t.Fatalf("watcher got %v while cut off", got)
	}
	proxy.Restore()
	c.check(t, "after the cut", span(1, 7))
	other.check(t, "other room after the cut", span(1, 2))
	appendN(t, b, "lobby", 2)
	c.check(t, "live after the cut", span(1, 9))
}

// TestWatchReplacesSilentConnection: a fan-out connection that goes silent
// (no error, no data, as behind a dead NAT entry) is noticed by its
// unanswered pings and replaced, and what was stored meanwhile is caught up.
func TestWatchReplacesSilentConnection(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	a := open(t, proxy.URL(), opts)
	b := open(t, srv.URL(), opts)
	var c collector
	defer a.Watch("lobby", c.fn)()
	appendN(t, b, "lobby", 1)
	c.check(t, "before the stall", []int64{1})
	proxy.Stall()
	appendN(t, b, "lobby", 2)
	c.check(t, "after the stall", span(1, 3))
	appendN(t, b, "lobby", 1)
	c.check(t, "live after the stall", span(1, 4))
}

// TestAppendFailsFastWhenRedisHangs: a server that stops answering (no
// error, just silence) fails an Append within the timeouts, with
// chat.ErrUnavailable, instead of hanging the POST.
func TestAppendFailsFastWhenRedisHangs(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	s := open(t, proxy.URL(), Options{KeyPrefix: freshPrefix(), PoolSize: 1})
	appendN(t, s, "lobby", 1) // the pool's one connection is open
	proxy.Stall()
	start := time.Now()
	m, err := s.Append(t.Context(), msg("lobby", "into the void"))
	if err == nil {
		t.Fatalf("Append to a silent server reported success (seq %d)", m.Seq)
	}
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Append to a silent server: %v, want an error wrapping chat.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Append to a silent server took %v, want under 3s", d)
	}
}

// TestWatchAfterReset: a Redis that lost its data (a restart without
// persistence, a flush) counts rooms from 1 again; the watcher is given the
// new messages instead of dropping them as old seqs.
func TestWatchAfterReset(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	a := open(t, proxy.URL(), opts)
	b := open(t, srv.URL(), opts)
	var c collector
	defer a.Watch("lobby", c.fn)()
	appendN(t, b, "lobby", 5)
	c.check(t, "before the reset", span(1, 5))
	old := c.epochs()[0]
	proxy.Cut()
	if err := rawClient(t, srv.URL()).FlushDB(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := b.Append(t.Context(), msg("lobby", "new 1"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 || m.Epoch == old || m.Epoch == "" {
		t.Fatalf("Append after the flush = seq %d, epoch %q; want seq 1 in a new epoch (not %q)", m.Seq, m.Epoch, old)
	}
	appendN(t, b, "lobby", 1)
	proxy.Restore()
	c.check(t, "after the reset", []int64{1, 2, 3, 4, 5, 1, 2})
	want := []string{old, old, old, old, old, m.Epoch, m.Epoch}
	if got := c.epochs(); !slices.Equal(got, want) {
		t.Errorf("epochs delivered = %v, want %v", got, want)
	}
}

// TestOutageAndRestart stops redis-server mid-run: appends fail fast with
// chat.ErrUnavailable and never report success; after a restart on the same
// port and data, appends work again by themselves and a watcher that was
// watching all along gets every stored message once, in order, including
// those stored while its own connection was still down.
func TestOutageAndRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	proxy := redistest.NewProxy(t, srv.Addr)
	opts := testOptions()
	poster := open(t, srv.URL(), opts)
	watching := open(t, proxy.URL(), opts)
	var far, near collector
	defer watching.Watch("lobby", far.fn)()
	defer poster.Watch("lobby", near.fn)()
	appendN(t, poster, "lobby", 3)
	far.check(t, "remote watcher before the outage", span(1, 3))

	proxy.Cut() // the watcher's node stays cut off until after the restart
	srv.Stop()
	for i := range 3 {
		start := time.Now()
		m, err := poster.Append(t.Context(), msg("lobby", "during the outage"))
		if err == nil {
			t.Fatalf("Append #%d with Redis down reported success (seq %d)", i, m.Seq)
		}
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("Append with Redis down: %v, want an error wrapping chat.ErrUnavailable", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Append with Redis down took %v, want under 3s", d)
		}
	}
	if err := poster.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ping with Redis down = %v, want an error wrapping chat.ErrUnavailable", err)
	}
	if _, err := poster.Since(t.Context(), "lobby", 0, 10); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Since with Redis down = %v, want an error wrapping chat.ErrUnavailable", err)
	}

	srv.Start()
	// Appends work again by themselves; every one that reports success
	// continues the sequence kept in the append-only file.
	var next int64 = 4
	waitUntil(t, "Append working again after the restart", func() bool {
		m, err := poster.Append(t.Context(), msg("lobby", "after the restart"))
		if err != nil {
			if !errors.Is(err, chat.ErrUnavailable) {
				t.Fatalf("Append after the restart: %v, want success or chat.ErrUnavailable", err)
			}
			return false
		}
		if m.Seq != next {
			t.Fatalf("first Append after the restart got seq %d, want %d", m.Seq, next)
		}
		return true
	})
	appendN(t, poster, "lobby", 2) // 5, 6: stored while the watcher is still cut off
	if got := far.seqs(); len(got) != 3 {
		t.Fatalf("cut-off watcher got %v", got)
	}
	near.check(t, "watcher on the posting node", span(1, 6))

	proxy.Restore()
	far.check(t, "remote watcher after the restart", span(1, 6))
	appendN(t, poster, "lobby", 2)
	far.check(t, "remote watcher, live again", span(1, 8))
	near.check(t, "watcher on the posting node, live again", span(1, 8))
	if err := watching.Ping(t.Context()); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
}

func TestClosed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := Open(t.Context(), srv.URL(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	s.Watch("lobby", c.fn)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Ping after Close = %v, want chat.ErrClosed", err)
	}
	stop := s.Watch("lobby", c.fn) // a no-op, not a panic
	stop()
	other := open(t, srv.URL(), Options{KeyPrefix: s.opts.KeyPrefix})
	var marker collector
	defer other.Watch("lobby", marker.fn)()
	appendN(t, other, "lobby", 1)
	marker.check(t, "watcher of an open store", []int64{1})
	if got := c.seqs(); len(got) != 0 {
		t.Errorf("watcher of a closed store got %v", got)
	}
}

// TestNoGoroutineLeak: Close ends every goroutine the store started, also
// after an outage.
func TestNoGoroutineLeak(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr)
	before := runtime.NumGoroutine()
	for range 3 {
		s, err := Open(t.Context(), proxy.URL(), testOptions())
		if err != nil {
			t.Fatal(err)
		}
		var c collector
		stop := s.Watch("a", c.fn)
		s.Watch("b", c.fn)
		appendN(t, s, "a", 3)
		c.check(t, "watcher", span(1, 3))
		stop()
		proxy.Cut() // leave it mid-reconnect
		_, _ = s.Append(t.Context(), msg("a", "x"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		proxy.Restore()
	}
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
