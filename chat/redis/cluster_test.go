package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
	"github.com/hxchat/hxchat/chat/storetest"
)

// openCluster opens a Store on c and closes it when the test ends.
func openCluster(t testing.TB, c *redistest.Cluster, opts Options) *Store {
	t.Helper()
	s, err := OpenCluster(context.Background(), c.Seeds(), opts)
	if err != nil {
		t.Fatalf("OpenCluster: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestCluster runs the Store on a real Redis Cluster (3 masters, 3
// replicas). Its subtests share the cluster, in order: Failover kills a
// master and brings it back as a replica.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := redistest.StartCluster(t)
	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))

	t.Run("Contract", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, retention int) chat.Store {
			s, err := OpenCluster(t.Context(), c.Seeds(), Options{Retention: retention, KeyPrefix: freshPrefix()})
			if err != nil {
				t.Fatalf("OpenCluster: %v", err)
			}
			return s
		})
	})

	t.Run("RoomsSpreadOverMasters", func(t *testing.T) {
		s := openCluster(t, c, testOptions())
		per := map[string]int{}
		for i := range 30 {
			room := fmt.Sprintf("spread-%d", i)
			appendN(t, s, room, 1)
			per[c.MasterOf(t, s.keys(room).log).Addr]++
		}
		for _, m := range c.Masters(t) {
			if per[m.Addr] == 0 {
				t.Errorf("master %s holds none of the 30 rooms (%v)", m.Addr, per)
			}
		}
		rooms, err := s.Rooms(t.Context(), time.Time{}, 100)
		if err != nil || len(rooms) != 30 {
			t.Errorf("Rooms = %d rooms, %v; want 30", len(rooms), err)
		}
	})

	t.Run("NoReplicaWait", func(t *testing.T) {
		// Replicas < 0: one pipeline, split by go-redis over the room's
		// and the bucket's masters, as on a single server.
		opts := testOptions()
		opts.Replicas = -1
		s := openCluster(t, c, opts)
		if got := appendN(t, s, "nowait", 3); !slices.Equal(got, span(1, 3)) {
			t.Errorf("seqs %v, want 1…3", got)
		}
		if rooms, err := s.Rooms(t.Context(), time.Time{}, 10); err != nil || len(rooms) != 1 {
			t.Errorf("Rooms = %v, %v; want the one room", rooms, err)
		}
	})

	t.Run("ShardedPublish", func(t *testing.T) {
		// The append publishes with SPUBLISH: a SUBSCRIBE to the room's
		// channel hears nothing, an SSUBSCRIBE (on the room's master)
		// hears the message.
		s := openCluster(t, c, testOptions())
		const room = "sharded"
		ch := s.keys(room).live
		cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Seeds(), Protocol: 2, DisableIdentity: true})
		defer cc.Close()
		plain := cc.Subscribe(t.Context(), ch)
		defer plain.Close()
		sharded := cc.SSubscribe(t.Context(), ch)
		defer sharded.Close()
		for _, ps := range []*goredis.PubSub{plain, sharded} {
			if _, err := ps.ReceiveTimeout(t.Context(), 5*time.Second); err != nil {
				t.Fatalf("subscription not confirmed: %v", err)
			}
		}
		appendN(t, s, room, 1)
		v, err := sharded.ReceiveTimeout(t.Context(), 5*time.Second)
		if m, ok := v.(*goredis.Message); err != nil || !ok || m.Channel != ch || !strings.Contains(m.Payload, `"seq":1`) {
			t.Errorf("SSUBSCRIBE got %#v, %v; want seq 1 on %s", v, err, ch)
		}
		if v, err := plain.ReceiveTimeout(t.Context(), 300*time.Millisecond); err == nil {
			t.Errorf("SUBSCRIBE got %#v; want nothing (the append must use SPUBLISH)", v)
		}
	})

	t.Run("WatchAcrossNodes", func(t *testing.T) {
		// The feed has one sharded session per master; b's appends are
		// published on each room's master only.
		opts := testOptions()
		a := openCluster(t, c, opts)
		b := openCluster(t, c, opts)
		rooms := roomPerMaster(t, c, a, "across", nil)
		cols := make([]collector, len(rooms))
		for i, room := range rooms {
			defer a.Watch(room, cols[i].fn)()
		}
		for range 20 {
			for _, room := range rooms {
				appendN(t, b, room, 1)
			}
		}
		for i, room := range rooms {
			cols[i].check(t, "watch of "+room+" on another node", span(1, 20))
		}
	})

	t.Run("SecretAndPresence", func(t *testing.T) {
		opts := testOptions()
		a := openCluster(t, c, opts)
		b := openCluster(t, c, opts)
		sa, err := a.Secret(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sb, err := b.Secret(t.Context()); err != nil || string(sb) != string(sa) {
			t.Errorf("the two nodes' secrets differ (%v)", err)
		}
		leave := a.Presence().Join("lobby", chat.Member{Key: "k1", Name: "Ann"})
		defer leave()
		waitUntil(t, "Ann seen by the other node", func() bool {
			ms, err := b.Presence().Members(t.Context(), "lobby")
			return err == nil && len(ms) == 1 && ms[0].Name == "Ann"
		})
	})

	t.Run("Failover", func(t *testing.T) { testClusterFailover(t, c) })
	t.Run("SlotMove", func(t *testing.T) { testClusterSlotMove(t, c) })
}

// testClusterSlotMove moves a watched room's slot to another master
// (CLUSTER SETSLOT and MIGRATE, as redis-cli --cluster reshard does): the
// old master ends the feed's SSUBSCRIBE with an unsolicited SUNSUBSCRIBE,
// and the feed subscribes on the new one by itself, missing nothing.
func testClusterSlotMove(t *testing.T, c *redistest.Cluster) {
	opts := testOptions()
	s := openCluster(t, c, opts)
	watcher := openCluster(t, c, opts)
	const room = "mover"
	src := c.MasterOf(t, s.keys(room).log)
	var dst *redistest.ClusterNode
	for _, m := range c.Masters(t) {
		if m.Addr != src.Addr {
			dst = m
			break
		}
	}
	var col collector
	defer watcher.Watch(room, col.fn)()
	appendN(t, s, room, 3)
	col.check(t, "before the move", span(1, 3))

	ctx := t.Context()
	node := func(n *redistest.ClusterNode) *goredis.Client {
		cl := goredis.NewClient(&goredis.Options{Addr: n.Addr, Protocol: 2, DisableIdentity: true})
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	from, to := node(src), node(dst)
	do := func(cl *goredis.Client, args ...any) {
		t.Helper()
		if err := cl.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	slot, err := from.ClusterKeySlot(ctx, s.keys(room).log).Result()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	do(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.ID)
	do(from, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.ID)
	keys, err := from.ClusterGetKeysInSlot(ctx, int(slot), 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(dst.Addr, ":")
	do(from, append([]any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}, anys(keys)...)...)
	for _, m := range c.Masters(t) {
		do(node(m), "CLUSTER", "SETSLOT", slot, "NODE", dst.ID)
	}
	waitUntil(t, "the room's master is the new one", func() bool {
		return c.MasterOf(t, s.keys(room).log).Addr == dst.Addr
	})
	// The feed is subscribed on the new master.
	waitUntil(t, "the feed's SSUBSCRIBE on the new master", func() bool {
		v, err := to.Do(ctx, "PUBSUB", "SHARDNUMSUB", s.keys(room).live).Slice()
		return err == nil && len(v) == 2 && v[1] == int64(1)
	})
	t.Logf("slot %d moved and the feed subscribed on %s in %v", slot, dst.Addr, time.Since(start).Round(time.Millisecond))
	var last int64
	for i := range 5 {
		waitUntil(t, "Append after the move", func() bool {
			m, err := s.Append(ctx, msg(room, fmt.Sprint("moved ", i)))
			last = m.Seq
			return err == nil
		})
	}
	col.check(t, "after the move", span(1, last))
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// roomPerMaster returns one room named prefix-N for each master of c,
// leaving out the masters in skip.
func roomPerMaster(t *testing.T, c *redistest.Cluster, s *Store, prefix string, skip *redistest.ClusterNode) []string {
	t.Helper()
	var rooms []string
	seen := map[string]bool{}
	if skip != nil {
		seen[skip.Addr] = true
	}
	for i := 0; len(seen) < len(c.Masters(t)); i++ {
		room := fmt.Sprintf("%s-%d", prefix, i)
		if m := c.MasterOf(t, s.keys(room).log).Addr; !seen[m] {
			seen[m] = true
			rooms = append(rooms, room)
		}
	}
	return rooms
}

// testClusterFailover kills the master of a room: an acknowledged message
// survives, posts to its rooms fail fast with chat.ErrUnavailable while the
// rest go on, and posting and watching resume by themselves once a replica
// has taken over and has a replica of its own again.
func testClusterFailover(t *testing.T, c *redistest.Cluster) {
	opts := testOptions()
	opts.ReplicaTimeout = 500 * time.Millisecond
	s := openCluster(t, c, opts)
	watcher := openCluster(t, c, opts)

	const room = "doomed"
	dead := c.MasterOf(t, s.keys(room).log)
	other := ""
	for i := 0; other == ""; i++ {
		if name := fmt.Sprintf("safe-%d", i); c.MasterOf(t, s.keys(name).log) != dead {
			other = name
		}
	}
	// The watcher's feed has a session on the master that dies, and on
	// each of the others, whose rooms must not miss a message meanwhile.
	var col collector
	defer watcher.Watch(room, col.fn)()
	safe := roomPerMaster(t, c, s, "alive", dead)
	safeCols := make([]collector, len(safe))
	for i, r := range safe {
		defer watcher.Watch(r, safeCols[i].fn)()
	}
	posted := 0
	postSafe := func() {
		t.Helper()
		for _, r := range safe {
			appendN(t, s, r, 1)
		}
		posted++
	}
	acked := appendN(t, s, room, 3)
	appendN(t, s, other, 1)
	postSafe()
	col.check(t, "before the kill", span(1, 3))

	c.Kill(dead)
	killed := time.Now()
	start := time.Now()
	_, err := s.Append(t.Context(), msg(room, "into the void"))
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Append to a room of the dead master: %v, want an error wrapping chat.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Append to a room of the dead master took %v, want a few seconds at most", d)
	}
	t.Logf("Append to the dead master failed in %v: %v", time.Since(start).Round(time.Millisecond), err)
	start = time.Now()
	if _, err := s.Append(t.Context(), msg(other, "still here")); err != nil {
		t.Errorf("Append to a room of a living master: %v", err)
	}
	t.Logf("Append to a living master took %v", time.Since(start).Round(time.Millisecond))

	postSafe()
	heir := c.WaitFailover(t, dead, 15*time.Second)
	postSafe()
	t.Logf("failover to %s after %v", heir.Addr, time.Since(killed).Round(time.Millisecond))

	// The acknowledged messages survived.
	waitUntil(t, "Since after the failover", func() bool {
		ms, err := s.Since(t.Context(), room, 0, 100)
		if err != nil {
			return false
		}
		var seqs []int64
		for _, m := range ms {
			seqs = append(seqs, m.Seq)
		}
		if !slices.Equal(seqs[:min(len(seqs), len(acked))], acked) {
			t.Fatalf("after the failover the room holds %v, want the acknowledged %v first", seqs, acked)
		}
		return true
	})

	// The new master has no replica until the dead one is back: posts
	// fail (not yet on a replica: WAIT), then succeed, with the same Store.
	waitUntil(t, "an Append refused for want of a replica", func() bool {
		start := time.Now()
		_, err := s.Append(t.Context(), msg(room, "unconfirmed"))
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Fatalf("Append to a master without replicas: %v, want an error wrapping chat.ErrUnavailable", err)
		}
		if d := time.Since(start); d > opts.ReplicaTimeout+time.Second {
			t.Errorf("Append to a master without replicas took %v, want about ReplicaTimeout (%v)", d, opts.ReplicaTimeout)
		}
		return errors.Is(err, errNoReplica)
	})
	dead.Restart(t)
	start = time.Now()
	var m chat.Message
	waitUntil(t, "Append after the failover", func() bool {
		m, err = s.Append(t.Context(), msg(room, "back"))
		return err == nil
	})
	t.Logf("posting resumed %v after the restart; seq %d", time.Since(start).Round(time.Millisecond), m.Seq)

	// The watcher's feed reconnected and delivers what came after.
	waitUntil(t, "the watcher delivers the post after the failover", func() bool {
		return slices.Contains(col.seqs(), m.Seq)
	})
	if got := col.seqs(); !slices.Equal(got, span(1, m.Seq)) {
		t.Errorf("watcher delivered %v, want %v", summary(got), summary(span(1, m.Seq)))
	}
	// Later messages, exactly once and in order, on every master.
	appendN(t, s, room, 5)
	postSafe()
	col.check(t, "the dead master's room, after the failover", span(1, m.Seq+5))
	for i, r := range safe {
		safeCols[i].check(t, "room "+r+" of a living master", span(1, int64(posted)))
	}
}

// TestReplicasOnOneServer: Open with Options.Replicas waits for replicas
// too; a server without any refuses the post within ReplicaTimeout, with
// chat.ErrUnavailable, though the message is stored.
func TestReplicasOnOneServer(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	opts := testOptions()
	opts.Replicas = 1
	opts.ReplicaTimeout = 100 * time.Millisecond
	s := open(t, srv.URL(), opts)
	start := time.Now()
	_, err := s.Append(t.Context(), msg("r", "lonely"))
	if !errors.Is(err, chat.ErrUnavailable) || !errors.Is(err, errNoReplica) {
		t.Errorf("Append without a replica: %v, want an error wrapping chat.ErrUnavailable and errNoReplica", err)
	}
	if d := time.Since(start); d < opts.ReplicaTimeout || d > opts.ReplicaTimeout+time.Second {
		t.Errorf("Append without a replica took %v, want about ReplicaTimeout (%v)", d, opts.ReplicaTimeout)
	}
	if ms, err := s.Since(t.Context(), "r", 0, 10); err != nil || len(ms) != 1 {
		t.Errorf("Since = %d messages, %v; want the unconfirmed one stored", len(ms), err)
	}
}

func TestOpenClusterUnreachable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	addr := srv.Addr
	srv.Stop()
	start := time.Now()
	s, err := OpenCluster(t.Context(), []string{addr}, Options{})
	if err == nil {
		s.Close()
		t.Fatal("OpenCluster on a stopped server succeeded")
	}
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("OpenCluster on a stopped server: %v, want an error wrapping chat.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("OpenCluster on a stopped server took %v, want it to fail fast", d)
	}
	if _, err := OpenCluster(t.Context(), nil, Options{}); err == nil {
		t.Error("OpenCluster without seeds succeeded")
	}
}

func TestInfoVersion(t *testing.T) {
	info := "# Server\r\nredis_version:6.2.14\r\nredis_git_sha1:00000000\r\n"
	if got := infoField(info, "redis_version"); got != "6.2.14" {
		t.Errorf("infoField = %q, want 6.2.14", got)
	}
	err := fmt.Errorf("wrapped: %w", &oldVersionError{addr: "h:1", version: "6.2.14"})
	if !errorsIsOld(err) {
		t.Error("errorsIsOld does not see a wrapped oldVersionError")
	}
}
