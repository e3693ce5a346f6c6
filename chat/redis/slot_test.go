package redis

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// A Redis Cluster runs a script or a MULTI only when all its keys are in
// one hash slot. Every Store of these tests runs its commands through
// slotChecker, which records each script call and MULTI whose keys are
// not; TestMain fails the run if there was any, and TestOneSlotPerScript
// drives every path that runs one.

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the hash of the
// Redis Cluster spec.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// hashSlot is the cluster slot of key: of its hash tag, the part between
// the first "{" and the first "}" after it when that is not empty, or else
// of the whole key.
func hashSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16([]byte(key)) % 16384)
}

// slotChecker is a goredis.Hook that records the script calls and MULTIs
// whose keys span slots.
type slotChecker struct {
	mu         sync.Mutex
	violations []string
	scripts    int // script calls seen
	multis     int // MULTIs seen
}

var slots slotChecker

func TestMain(m *testing.M) {
	testHook = &slots
	code := m.Run()
	if v := slots.taken(0); len(v) > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d script calls or MULTIs touched keys of several slots:\n  %s\n", len(v), strings.Join(v, "\n  "))
		code = 1
	}
	os.Exit(code)
}

func (c *slotChecker) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *slotChecker) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.check([]goredis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (c *slotChecker) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.check(cmds)
		return next(ctx, cmds)
	}
}

// check looks at a pipeline (or one command): each script call on its own,
// and the commands between MULTI and EXEC together.
func (c *slotChecker) check(cmds []goredis.Cmder) {
	var multi []string // keys of the MULTI open, if any
	inMulti := false
	for _, cmd := range cmds {
		name := strings.ToLower(cmd.Name())
		switch {
		case name == "multi":
			inMulti, multi = true, nil
			continue
		case name == "exec":
			c.record("MULTI", multi, true)
			inMulti = false
			continue
		case name == "eval" || name == "evalsha" || name == "eval_ro" || name == "evalsha_ro":
			c.record(fmt.Sprint(cmd.Args()[:2]), scriptKeys(cmd), false)
		}
		if inMulti {
			multi = append(multi, cmdKeys(cmd)...)
		}
	}
}

// scriptKeys are the KEYS of an EVAL or EVALSHA.
func scriptKeys(cmd goredis.Cmder) []string {
	args := cmd.Args()
	n, _ := strconv.Atoi(fmt.Sprint(args[2]))
	var keys []string
	for _, a := range args[3 : 3+n] {
		keys = append(keys, fmt.Sprint(a))
	}
	return keys
}

// cmdKeys are the keys of a command queued in a MULTI: all the arguments
// of the multi-key commands the package uses there, else the first.
func cmdKeys(cmd goredis.Cmder) []string {
	args := cmd.Args()
	switch strings.ToLower(cmd.Name()) {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
		return scriptKeys(cmd)
	case "mget", "exists", "del", "unlink":
		var keys []string
		for _, a := range args[1:] {
			keys = append(keys, fmt.Sprint(a))
		}
		return keys
	}
	if len(args) < 2 {
		return nil
	}
	return []string{fmt.Sprint(args[1])}
}

func (c *slotChecker) record(what string, keys []string, isMulti bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if isMulti {
		c.multis++
	} else {
		c.scripts++
	}
	for _, k := range keys[min(1, len(keys)):] {
		if hashSlot(k) != hashSlot(keys[0]) {
			c.violations = append(c.violations, fmt.Sprintf("%s %q", what, keys))
			return
		}
	}
}

// taken returns the violations recorded after the first from.
func (c *slotChecker) taken(from int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations[min(from, len(c.violations)):]...)
}

func (c *slotChecker) counts() (violations, scripts, multis int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.violations), c.scripts, c.multis
}

// TestHashSlot pins crc16 and hashSlot to the values of the Redis Cluster
// spec and of CLUSTER KEYSLOT.
func TestHashSlot(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x31c3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "hello": 866,
		"{user1000}.following": hashSlot("user1000"), "foo{}{bar}": hashSlot("foo{}{bar}"),
		"foo{{bar}}zap": hashSlot("{bar"), "foo{bar}{zap}": hashSlot("bar"),
	} {
		if got := hashSlot(key); got != want {
			t.Errorf("hashSlot(%q) = %d, want %d", key, got, want)
		}
	}
	if hashSlot("foo{}{bar}") == hashSlot("bar") {
		t.Error("an empty tag must hash the whole key")
	}
}

// TestSlotCheckerCatches: the checker sees a script call and a MULTI whose
// keys span slots (so that the other tests' silence means something).
func TestSlotCheckerCatches(t *testing.T) {
	var c slotChecker
	ctx := t.Context()
	c.check([]goredis.Cmder{goredis.NewCmd(ctx, "evalsha", "abc", 2, "x:{a}:1", "x:{b}:2", "arg")})
	c.check([]goredis.Cmder{
		goredis.NewStatusCmd(ctx, "multi"),
		goredis.NewSliceCmd(ctx, "mget", "x:{a}:1", "x:{a}:2"),
		goredis.NewCmd(ctx, "xrange", "x:{c}:log", "-", "+"),
		goredis.NewSliceCmd(ctx, "exec"),
	})
	c.check([]goredis.Cmder{goredis.NewCmd(ctx, "eval", "return 1", 2, "x:{a}:1", "y:{a}:2")})
	if v := c.taken(0); len(v) != 2 {
		t.Errorf("violations = %q, want the cross-slot script and MULTI", v)
	}
}

// TestOneSlotPerScript drives every path of the package that runs a script
// or a MULTI (appends, reads, the feed's catch-up and epoch change, the
// janitor's lease, eviction, expiry and migration, presence) and checks
// that each touched keys of one slot.
func TestOneSlotPerScript(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := rawClient(t, srv.URL())
	from, scripts0, multis0 := slots.counts()
	opts := testOptions()
	opts.MaxRooms = 5
	opts.MaxAge = time.Hour
	opts.SweepInterval = time.Hour // the sweeps below
	old := opts.KeyPrefix + "rooms"
	if err := raw.ZAdd(t.Context(), old, goredis.Z{Score: 1, Member: "legacy"}).Err(); err != nil {
		t.Fatal(err)
	}
	s := open(t, srv.URL(), opts)
	var c collector
	defer s.Watch("r00", c.fn)()
	for i := range 12 {
		appendAt(t, s, roomName(i), time.Now().Add(-2*time.Hour+time.Duration(i)*time.Second), 2)
	}
	appendAt(t, s, roomName(0), time.Now(), 1)
	c.wait(t, "r00's messages", 3)
	if _, err := s.Recent(t.Context(), roomName(0), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rooms(t.Context(), time.Time{}, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.migrateIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	for {
		more, err := s.evictExcess(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	if _, err := s.expireOld(t.Context(), &ageWalk{}); err != nil {
		t.Fatal(err)
	}
	// The feed's epoch change (a real one: TestSeqWentBackGivesNewEpoch,
	// whose calls TestMain checks too).
	k := s.keys(roomName(0))
	if err := bumpEpochScript.Run(t.Context(), s.client, []string{k.epoch, k.seq, k.log}, "", chat.NewEpoch()).Err(); err != nil {
		t.Fatal(err)
	}
	leave := s.Presence().Join("r00", chat.Member{Key: "k1", Name: "Ann"})
	waitUntil(t, "Ann present", func() bool {
		occ, err := s.Presence().Occupied(t.Context(), 10)
		return err == nil && len(occ) == 1
	})
	leave()
	waitUntil(t, "Ann gone", func() bool {
		occ, err := s.Presence().Occupied(t.Context(), 10)
		return err == nil && len(occ) == 0
	})

	if v := slots.taken(from); len(v) > 0 {
		t.Errorf("script calls or MULTIs across slots:\n  %s", strings.Join(v, "\n  "))
	}
	if _, scripts, multis := slots.counts(); scripts-scripts0 < 20 || multis-multis0 < 2 {
		t.Errorf("saw %d script calls and %d MULTIs: the checker does not see the Store's commands", scripts-scripts0, multis-multis0)
	}
}
