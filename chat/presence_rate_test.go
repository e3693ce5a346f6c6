package chat_test

import (
	"fmt"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// A crowd joining at once gets one list per interval, not one per join,
// and the last list has everyone.
func TestHubPresenceInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, crowd = time.Second, 200
		hub := chat.NewHub(chat.NewMemoryStore(0), chat.HubOptions{
			PresenceInterval: interval,
			// A list's fragment is its number of members.
			RenderPresence: func(_ string, ms []chat.Member) ([]byte, error) {
				return strconv.AppendInt(nil, int64(len(ms)), 10), nil
			},
		})
		first := follow(t, hub, "lobby")
		synctest.Wait()
		if got := len(first.got()); got != 1 {
			t.Fatalf("%d lists after following, want 1", got)
		}
		for i := range crowd {
			defer hub.Join("lobby", chat.Member{Key: fmt.Sprintf("%04x", i), Name: fmt.Sprintf("m%d", i)})()
			time.Sleep(interval / 100) // the crowd arrives over two intervals
		}
		// A latecomer gets the last list at once, not after the interval.
		late := follow(t, hub, "lobby")
		synctest.Wait()
		if got := len(late.got()); got != 1 {
			t.Errorf("latecomer has %d lists right after following, want 1", got)
		}
		time.Sleep(2 * interval)
		synctest.Wait()
		lists := first.got()
		// 200 joins over 2 s at one list a second: the first list, about
		// one per second of joining, and the last.
		if got, most := len(lists), 1+2+1+1; got > most || got < 2 {
			t.Errorf("%d lists for %d joins over %v, want 2 to %d", got, crowd, 2*interval, most)
		}
		if got := string(lists[len(lists)-1].HTML); got != strconv.Itoa(crowd) {
			t.Errorf("last list has %s members, want %d", got, crowd)
		}
		for i := 1; i < len(lists); i++ {
			if string(lists[i].HTML) == string(lists[i-1].HTML) {
				t.Errorf("list %d repeats the one before it", i)
			}
		}
	})
}
