package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// TestTwoNodesOnACluster runs two hxchat nodes on a real Redis Cluster (3
// masters, 3 replicas): 30 rooms spread over every master; what is posted
// on one node reaches a subscriber on the other, in order; a master killed
// while both nodes post loses no acknowledged message, its rooms answer 503
// meanwhile, and posting resumes by itself after the failover.
func TestTwoNodesOnACluster(t *testing.T) {
	c := redistest.StartCluster(t)
	seeds := strings.Join(c.Seeds(), ",")
	// Replay every message of a room (the check reads whole histories).
	a := startServer(t, "-redis-cluster", seeds, "-replay-max", "100000")
	b := startServer(t, "-redis-cluster", seeds, "-replay-max", "100000")
	const rooms = 30
	room := func(i int) string { return "cl-" + strconv.Itoa(i) }

	t.Run("RoomsOnEveryMaster", func(t *testing.T) {
		on := map[string]bool{}
		for i := range rooms {
			on[c.MasterOf(t, "hxchat:room:{"+room(i)+"}:seq").Addr] = true
		}
		for _, m := range c.Masters(t) {
			if !on[m.Addr] {
				t.Errorf("no room of %d on master %s: the rooms do not spread", rooms, m.Addr)
			}
		}
	})

	t.Run("PostedOnAInOrderOnB", func(t *testing.T) {
		subs := make([]*sseClient, rooms)
		for i := range rooms {
			subs[i] = openSSE(t, b.URL+"/chat/"+room(i)+"/events?after=0", "")
		}
		const each = 5
		for n := range each {
			for i := range rooms {
				a.post(t, room(i), fmt.Sprintf("%s #%d", room(i), n))
			}
		}
		for i, s := range subs {
			evs := s.Collect(t, each, 10*time.Second)
			for n, ev := range evs {
				if want := fmt.Sprintf("%s #%d", room(i), n); ev.Seq != int64(n+1) || textOf(ev.Data) != want {
					t.Fatalf("%s on node B: event %d is %s %q, want seq %d %q", room(i), n, ev.ID, textOf(ev.Data), n+1, want)
				}
			}
		}
	})

	t.Run("MasterKilledWhileBothPost", func(t *testing.T) {
		victim := c.MasterOf(t, "hxchat:room:{"+room(0)+"}:seq")
		var (
			mu       sync.Mutex
			acked    = map[string][]string{} // room → texts answered 303
			refused  int
			stop     = make(chan struct{})
			wg       sync.WaitGroup
			failures = make(chan string, 8)
		)
		for p, node := range []*server{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					r := room(n % rooms)
					text := fmt.Sprintf("k%d-%d", p, n)
					status, _, _ := tryPost(t, node.URL, r, text)
					mu.Lock()
					switch status {
					case http.StatusSeeOther:
						acked[r] = append(acked[r], text)
					case http.StatusServiceUnavailable:
						refused++
					default:
						select {
						case failures <- fmt.Sprintf("post %s to %s: status %d, want 303 or 503", text, r, status):
						default:
						}
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Second)
		c.Kill(victim)
		killed := time.Now()
		c.WaitFailover(t, victim, 20*time.Second)
		t.Logf("failover of %s took %s", victim.Addr, time.Since(killed).Round(10*time.Millisecond))
		// The promoted replica has no replica of its own: until one joins,
		// no write of its shard can be confirmed on a replica, so its rooms
		// answer 503. The dead node comes back (a supervisor restarts it)
		// as the new master's replica.
		victim.Restart(t)

		// Posting to the victim's rooms resumes by itself.
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, _, _ := tryPost(t, a.URL, room(0), "after the failover")
			if status == http.StatusSeeOther {
				mu.Lock()
				acked[room(0)] = append(acked[room(0)], "after the failover")
				mu.Unlock()
				break
			}
			if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("post to %s after the failover: status %d", room(0), status)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("posting to %s resumed %s after the kill", room(0), time.Since(killed).Round(10*time.Millisecond))
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Error(f)
		}

		// Every acknowledged message is in its room's history, once. A
		// post answered 503 may still be stored (its replica did not
		// confirm in time), so each history is read until it stops.
		subs := make([]*sseClient, rooms)
		for i := range rooms {
			subs[i] = openSSE(t, b.URL+"/chat/"+room(i)+"/events?after=0", "")
		}
		time.Sleep(2 * time.Second) // the replays arrive meanwhile
		total := 0
		for i, s := range subs {
			want := acked[room(i)]
			total += len(want)
			seen := map[string]int{}
			for quiet := false; !quiet; {
				select {
				case ev := <-s.Events:
					seen[textOf(ev.Data)]++
				case <-time.After(300 * time.Millisecond):
					quiet = true
				}
			}
			s.Close()
			for _, text := range want {
				if seen[text] != 1 {
					t.Errorf("%s: acknowledged %q appears %d times in its history", room(i), text, seen[text])
				}
			}
		}
		t.Logf("%d posts acknowledged, %d refused with 503 during the failover", total, refused)
	})
}
