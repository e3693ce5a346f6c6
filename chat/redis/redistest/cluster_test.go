package redistest_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// TestCluster runs its subtests in order on one cluster, since starting one
// takes seconds; Failover leaves a master killed and RestartRejoins brings it
// back.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := redistest.StartCluster(t)
	t.Logf("cluster of %d nodes ready in %v", len(c.Nodes), time.Since(start).Round(time.Millisecond))

	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Seeds()})
	t.Cleanup(func() { _ = cc.Close() })

	t.Run("Topology", func(t *testing.T) {
		masters := c.Masters(t)
		if got, want := len(masters), 3; got != want {
			t.Fatalf("%d masters, want %d", got, want)
		}
		slots, err := cc.ClusterSlots(t.Context()).Result()
		if err != nil {
			t.Fatal(err)
		}
		covered := 0
		replicas := map[string]int{}
		for _, s := range slots {
			covered += int(s.End - s.Start + 1)
			replicas[s.Nodes[0].Addr] = len(s.Nodes) - 1
		}
		if got, want := covered, 16384; got != want {
			t.Errorf("%d slots covered, want %d", got, want)
		}
		for _, m := range masters {
			if got, want := replicas[m.Addr], 1; got != want {
				t.Errorf("master %s has %d replicas, want %d", m.Addr, got, want)
			}
		}
	})

	t.Run("HashTagsSpreadOverMasters", func(t *testing.T) {
		ctx := t.Context()
		perMaster := map[*redistest.ClusterNode]int{}
		for i := range 30 {
			key := fmt.Sprintf("{room-%d}:x", i)
			if err := cc.Set(ctx, key, i, 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", key, err)
			}
			m := c.MasterOf(t, key)
			// Ask the master itself, not through the cluster client: the
			// key must be where MasterOf says.
			if got, err := nodeClient(t, m).Get(ctx, key).Int(); err != nil || got != i {
				t.Errorf("GET %s on %s = %d, %v; want %d", key, m.Addr, got, err, i)
			}
			perMaster[m]++
		}
		for _, m := range c.Masters(t) {
			if perMaster[m] == 0 {
				t.Errorf("master %s holds none of the 30 keys", m.Addr)
			}
		}
		t.Logf("keys per master: %v", countsByAddr(perMaster))
	})

	t.Run("ShardedPubSub", func(t *testing.T) {
		ctx := t.Context()
		const channel = "{room-1}:events"
		sub := cc.SSubscribe(ctx, channel)
		defer sub.Close()
		// Receive the confirmation first, so the publish cannot overtake
		// the subscription.
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatalf("SSUBSCRIBE: %v", err)
		}
		if n, err := cc.SPublish(ctx, channel, "hello").Result(); err != nil || n != 1 {
			t.Fatalf("SPUBLISH = %d, %v; want 1 receiver", n, err)
		}
		select {
		case msg := <-sub.Channel():
			if got, want := msg.Payload, "hello"; got != want || msg.Channel != channel {
				t.Errorf("got %q on %q, want %q on %q", got, msg.Channel, want, channel)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message within 5s")
		}
	})

	var dead, heir *redistest.ClusterNode // set by Failover
	t.Run("Failover", func(t *testing.T) {
		ctx := t.Context()
		const key = "{room-7}:x"
		dead = c.MasterOf(t, key)
		if err := cc.Set(ctx, key, "before", 0).Err(); err != nil {
			t.Fatal(err)
		}
		// Wait until the replica has the write, so it must survive.
		if n, err := nodeClient(t, dead).Do(ctx, "WAIT", 1, 2000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT 1 = %d, %v; want 1 replica", n, err)
		}

		killed := time.Now()
		c.Kill(dead)
		heir = c.WaitFailover(t, dead, 15*time.Second)
		failover := time.Since(killed)
		if heir == dead {
			t.Fatalf("the new master is the dead one, %s", dead.Addr)
		}
		// WAIT put the write on the replica that took over.
		if got, err := nodeClient(t, heir).Get(ctx, key).Result(); err != nil || got != "before" {
			t.Errorf("GET %s on the new master = %q, %v; want %q", key, got, err, "before")
		}
		if got := c.MasterOf(t, key); got != heir {
			t.Errorf("MasterOf(%q) = %s, want the new master %s", key, got.Addr, heir.Addr)
		}

		// go-redis's ClusterClient reloads its slot map on MOVED, not when
		// a master stops answering: left alone it would dial the dead
		// master until ClusterStateReloadInterval (60 s) has passed. So
		// tell it to reload, as hxchat's cluster store will have to.
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if err = cc.Set(ctx, key, "after", 0).Err(); err == nil {
				break
			}
			cc.ReloadState(ctx)
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("SET %s after the failover: %v", key, err)
		}
		writable := time.Since(killed)
		t.Logf("killed master %s: %s took over in %v, the cluster client wrote again after %v",
			dead.Addr, heir.Addr, failover.Round(time.Millisecond), writable.Round(time.Millisecond))
		if got, err := nodeClient(t, heir).Get(ctx, key).Result(); err != nil || got != "after" {
			t.Errorf("GET %s on the new master = %q, %v; want %q", key, got, err, "after")
		}
		if got, want := len(c.Masters(t)), 3; got != want {
			t.Errorf("%d masters after the failover, want %d", got, want)
		}
	})

	t.Run("RestartRejoins", func(t *testing.T) {
		if dead == nil || heir == nil {
			t.Skip("no node is down (Failover did not run or failed)")
		}
		restarted := time.Now()
		dead.Restart(t)
		t.Logf("%s rejoined as a replica in %v", dead.Addr, time.Since(restarted).Round(time.Millisecond))
		for _, m := range c.Masters(t) {
			if m == dead {
				t.Errorf("restarted %s is a master again", dead.Addr)
			}
		}
		_, heirPort, _ := net.SplitHostPort(heir.Addr)
		if info := nodeClient(t, dead).Info(t.Context(), "replication").Val(); !strings.Contains(info, "master_port:"+heirPort+"\r\n") {
			t.Errorf("restarted %s is not a replica of %s:\n%s", dead.Addr, heir.Addr, info)
		}
		if err := cc.Set(t.Context(), "{room-7}:x", "again", 0).Err(); err != nil {
			t.Errorf("SET after the restart: %v", err)
		}
	})
}

// nodeClient returns a client to n alone, closed when the test ends.
func nodeClient(t *testing.T, n *redistest.ClusterNode) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: n.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func countsByAddr(m map[*redistest.ClusterNode]int) map[string]int {
	out := make(map[string]int, len(m))
	for n, k := range m {
		out[n.Addr] = k
	}
	return out
}
