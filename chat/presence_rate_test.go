package chat

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// presenceSink records the member lists offered to one subscriber.
type presenceSink struct {
	mu    sync.Mutex
	lists []*PresenceUpdate
}

func (s *presenceSink) Deliver(*Delivery) bool { return true }
func (s *presenceSink) Dropped()               {}
func (s *presenceSink) Presence(u *PresenceUpdate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists = append(s.lists, u)
}

func (s *presenceSink) got() []*PresenceUpdate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*PresenceUpdate(nil), s.lists...)
}

// A crowd joining at once gets one list per interval, not one per join,
// and the last list has everyone.
func TestHubPresenceInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, crowd = time.Second, 200
		hub := NewHub(NewMemoryStore(0), HubOptions{PresenceInterval: interval})
		first := &presenceSink{}
		sub := hub.SubscribeSink("lobby", first)
		defer sub.Close()
		synctest.Wait()
		if got := len(first.got()); got != 1 {
			t.Fatalf("%d lists after subscribing, want 1", got)
		}
		for i := range crowd {
			defer hub.Join("lobby", Member{Key: fmt.Sprintf("%04x", i), Name: fmt.Sprintf("m%d", i)})()
			time.Sleep(interval / 100) // the crowd arrives over two intervals
		}
		// A latecomer gets the last list at once, not after the interval.
		late := &presenceSink{}
		lsub := hub.SubscribeSink("lobby", late)
		defer lsub.Close()
		synctest.Wait()
		if got := len(late.got()); got != 1 {
			t.Errorf("latecomer has %d lists right after subscribing, want 1", got)
		}
		time.Sleep(2 * interval)
		synctest.Wait()
		lists := first.got()
		// 200 joins over 2 s at one list a second: the first list, about
		// one per second of joining, and the last.
		if got, most := len(lists), 1+2+1+1; got > most || got < 2 {
			t.Errorf("%d lists for %d joins over %v, want 2 to %d", got, crowd, 2*interval, most)
		}
		if got := len(lists[len(lists)-1].Members); got != crowd {
			t.Errorf("last list has %d members, want %d", got, crowd)
		}
		for i := 1; i < len(lists); i++ {
			if len(lists[i].Members) == len(lists[i-1].Members) {
				t.Errorf("list %d repeats the one before it", i)
			}
		}
	})
}
