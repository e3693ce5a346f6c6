package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, retention int) chat.Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "chat.db"), Options{Retention: retention})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestStoreInMemory runs the contract against MemoryPath, where readers and
// the writer share one memdb database instead of a file in WAL mode.
func TestStoreInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, retention int) chat.Store {
		s, err := Open(t.Context(), MemoryPath, Options{Retention: retention})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// openStore opens the store at path and closes it when the test ends.
func openStore(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, chat.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535_897_000, time.UTC)

func msg(room, text string) chat.Message {
	return chat.Message{Room: room, Author: "tester", Text: text, Time: epoch}
}

// mustAppend appends and checks the seq the store gave.
func mustAppend(t *testing.T, s *Store, m chat.Message, want int64) {
	t.Helper()
	got, err := s.Append(t.Context(), m)
	if err != nil {
		t.Fatalf("Append(%q, %q): %v", m.Room, m.Text, err)
	}
	if got.Seq != want {
		t.Fatalf("Append(%q, %q): Seq = %d, want %d", m.Room, m.Text, got.Seq, want)
	}
}

// texts returns "seq:text" of each message, for comparisons.
func texts(msgs []chat.Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%s", m.Seq, m.Text)
	}
	return b.String()
}

// rawDB opens the file beside the store, for tests that look at or tamper
// with what is on disk.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, "_pragma=busy_timeout(5000)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// storedRows counts the rows of room in the messages table, trimmed or not.
func storedRows(t *testing.T, s *Store, room string) int {
	t.Helper()
	var n int
	err := s.rdb.QueryRowContext(t.Context(),
		`SELECT count(*) FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.name = ?`, room).Scan(&n)
	if err != nil {
		t.Fatalf("count rows of %q: %v", room, err)
	}
	return n
}

func TestReopenContinues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openStore(t, path, Options{})
	for i := int64(1); i <= 5; i++ {
		mustAppend(t, s, msg("lobby", fmt.Sprintf("before %d", i)), i)
	}
	mustAppend(t, s, msg("한국어", "안녕"), 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, path, Options{})
	mustAppend(t, s, msg("lobby", "after 6"), 6)
	mustAppend(t, s, msg("한국어", "다시"), 2)
	got, err := s.Since(t.Context(), "lobby", 0, 100)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if got, want := texts(got), "1:before 1 2:before 2 3:before 3 4:before 4 5:before 5 6:after 6"; got != want {
		t.Errorf("history after reopen = %q, want %q", got, want)
	}
	// Time survives to the microsecond, and comes back in UTC.
	if len(got) > 0 && (!got[0].Time.Equal(epoch) || got[0].Time.Location() != time.UTC) {
		t.Errorf("Time after reopen = %v, want %v", got[0].Time, epoch)
	}
}

func TestTimeKeptToTheMicrosecond(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{})
	in := msg("lobby", "hi")
	in.Time = epoch.Add(789 * time.Nanosecond)
	got, err := s.Append(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.Recent(t.Context(), "lobby", 1)
	if err != nil || len(stored) != 1 {
		t.Fatalf("Recent = (%d messages, %v), want 1", len(stored), err)
	}
	// What Append returns is what readers get later: live and replayed
	// copies of a message render alike.
	if !got.Time.Equal(epoch) || !stored[0].Time.Equal(got.Time) {
		t.Errorf("Append returned Time %v, store returned %v; want both %v", got.Time, stored[0].Time, epoch)
	}
}

func TestPathIsNotParsed(t *testing.T) {
	// '?', '#' and '%' belong to the file name, not to URI syntax.
	path := filepath.Join(t.TempDir(), "a b?c=1#d%20é.db")
	s := openStore(t, path, Options{})
	mustAppend(t, s, msg("lobby", "hi"), 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created under its exact name: %v", err)
	}
	s = openStore(t, path, Options{})
	mustAppend(t, s, msg("lobby", "again"), 2)
}

func TestMigrationsNumbered(t *testing.T) {
	steps, err := migrations()
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	if len(steps) == 0 {
		t.Fatal("no embedded migrations")
	}
	path := filepath.Join(t.TempDir(), "chat.db")
	openStore(t, path, Options{}).Close()
	var version, appID int
	db := rawDB(t, path)
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA application_id").Scan(&appID); err != nil {
		t.Fatal(err)
	}
	if version != len(steps) || appID != applicationID {
		t.Errorf("new database: user_version %d, application_id %#x; want %d, %#x", version, appID, len(steps), applicationID)
	}
}

func TestDurableSettings(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{})
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1"} {
		var got string
		if err := s.wdb.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer's PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	var queryOnly string
	if err := s.rdb.QueryRowContext(t.Context(), "PRAGMA query_only").Scan(&queryOnly); err != nil {
		t.Fatal(err)
	}
	if queryOnly != "1" {
		t.Errorf("readers' PRAGMA query_only = %s, want 1", queryOnly)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	openStore(t, path, Options{}).Close()
	steps, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	newer := len(steps) + 1
	db := rawDB(t, path)
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", newer)); err != nil {
		t.Fatal(err)
	}

	s, err := Open(t.Context(), path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a database newer than the code succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open: %v, want an error wrapping ErrSchemaTooNew", err)
	}
	for _, want := range []string{path, fmt.Sprintf("version %d", newer), fmt.Sprintf("up to %d", len(steps))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open error %q does not mention %q", err, want)
		}
	}
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != newer {
		t.Errorf("refused database's user_version changed to %d, want %d left alone", version, newer)
	}
}

func TestForeignDatabaseRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db := rawDB(t, path)
	if _, err := db.Exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of another program's database succeeded")
	}
	if !errors.Is(err, ErrNotHxchat) {
		t.Errorf("Open: %v, want an error wrapping ErrNotHxchat", err)
	}
	var tables int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 1 {
		t.Errorf("refused database has %d schema objects, want its 1 table left alone", tables)
	}
}

func TestOpenBadPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "chat.db")
	s, err := Open(t.Context(), path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open in a directory that does not exist succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open error %q does not name the path", err)
	}
}

// gate holds the writer before its next batch until released, so a test
// can queue appends and know they will be committed together.
type gate struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

// hook is the writer's beforeBatch: the first batch waits for release.
func (g *gate) hook() {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
}

// waitQueued waits until n appends wait in the writer's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.w.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d appends queued after 5s, want %d", len(s.w.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	m   chat.Message
	err error
}

// await returns the result of an appendAsync, failing the test if it does
// not come within 5s.
func await(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Append did not return within 5s")
		return result{}
	}
}

// appendAsync starts an Append and returns where its result will arrive.
func appendAsync(ctx context.Context, s *Store, m chat.Message) <-chan result {
	c := make(chan result, 1)
	go func() {
		got, err := s.Append(ctx, m)
		c <- result{got, err}
	}()
	return c
}

func TestGroupCommit(t *testing.T) {
	t.Run("QueuedAppendsShareOneTransaction", func(t *testing.T) {
		g := newGate()
		s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{beforeBatch: g.hook})
		first := appendAsync(t.Context(), s, msg("lobby", "first"))
		<-g.entered
		const n = 50
		var rest []<-chan result
		for i := range n {
			rest = append(rest, appendAsync(t.Context(), s, msg("lobby", fmt.Sprint(i))))
		}
		waitQueued(t, s, n)
		close(g.release)
		if r := await(t, first); r.err != nil || r.m.Seq != 1 {
			t.Fatalf("first Append = (seq %d, %v), want seq 1", r.m.Seq, r.err)
		}
		seen := make(map[int64]bool)
		for _, c := range rest {
			r := await(t, c)
			if r.err != nil {
				t.Fatalf("Append: %v", r.err)
			}
			seen[r.m.Seq] = true
		}
		for seq := int64(2); seq <= n+1; seq++ {
			if !seen[seq] {
				t.Errorf("no Append got seq %d", seq)
			}
		}
		if got, want := s.Stats(), (Stats{Appends: n + 1, Commits: 2}); got != want {
			t.Errorf("Stats = %+v, want %+v: the %d queued appends in one transaction", got, want, n)
		}
	})
	t.Run("ConcurrentPostersShareTransactions", func(t *testing.T) {
		s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{})
		const posters, each = 8, 100
		var wg sync.WaitGroup
		for p := range posters {
			wg.Go(func() {
				for i := range each {
					if _, err := s.Append(t.Context(), msg("lobby", fmt.Sprintf("%d-%d", p, i))); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		st := s.Stats()
		t.Logf("%d appends in %d transactions", st.Appends, st.Commits)
		if st.Appends != posters*each || st.Commits >= st.Appends {
			t.Errorf("Stats = %+v: want %d appends in fewer transactions", st, posters*each)
		}
	})
}

func TestFailedBatchFailsEveryAppendInIt(t *testing.T) {
	g := newGate()
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{beforeBatch: g.hook})
	// A trigger on the writer's connection makes one message's insert
	// fail, and with it the whole transaction.
	if _, err := s.wdb.ExecContext(t.Context(), `CREATE TEMP TRIGGER poison BEFORE INSERT ON messages
		WHEN NEW.body = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned message'); END`); err != nil {
		t.Fatal(err)
	}
	first := appendAsync(t.Context(), s, msg("lobby", "first"))
	<-g.entered
	batch := []<-chan result{
		appendAsync(t.Context(), s, msg("lobby", "innocent")),
		appendAsync(t.Context(), s, msg("other", "poison")),
		appendAsync(t.Context(), s, msg("lobby", "bystander")),
	}
	waitQueued(t, s, len(batch))
	close(g.release)
	if r := await(t, first); r.err != nil || r.m.Seq != 1 {
		t.Fatalf("first Append = (seq %d, %v), want seq 1", r.m.Seq, r.err)
	}
	for i, c := range batch {
		r := await(t, c)
		if r.err == nil {
			t.Errorf("Append #%d in the failed transaction got seq %d, want an error", i, r.m.Seq)
			continue
		}
		if !strings.Contains(r.err.Error(), "poisoned message") || errors.Is(r.err, chat.ErrInvalid) || errors.Is(r.err, chat.ErrClosed) {
			t.Errorf("Append #%d: %v, want the transaction's error, not ErrInvalid or ErrClosed", i, r.err)
		}
	}
	if got := s.Stats().FailedAppends; got != int64(len(batch)) {
		t.Errorf("Stats.FailedAppends = %d, want %d", got, len(batch))
	}
	// The failed transaction used no seq: the next message is 2, and
	// nothing of the batch was stored.
	mustAppend(t, s, msg("lobby", "next"), 2)
	mustAppend(t, s, msg("other", "first other"), 1)
	got, err := s.Since(t.Context(), "lobby", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := texts(got), "1:first 2:next"; got != want {
		t.Errorf("lobby = %q, want %q", got, want)
	}
}

func TestCancelledWhileQueuedStoresNothing(t *testing.T) {
	g := newGate()
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{beforeBatch: g.hook})
	first := appendAsync(t.Context(), s, msg("lobby", "first"))
	<-g.entered
	ctx, cancel := context.WithCancel(t.Context())
	queued := appendAsync(ctx, s, msg("lobby", "given up"))
	waitQueued(t, s, 1)
	cancel()
	if r := await(t, queued); !errors.Is(r.err, context.Canceled) {
		t.Errorf("Append whose ctx was cancelled while queued = (seq %d, %v), want context.Canceled", r.m.Seq, r.err)
	}
	close(g.release)
	if r := await(t, first); r.err != nil {
		t.Fatal(r.err)
	}
	// The writer saw the ctx done before the transaction: nothing stored,
	// no seq used.
	mustAppend(t, s, msg("lobby", "second"), 2)
	got, err := s.Since(t.Context(), "lobby", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := texts(got), "1:first 2:second"; got != want {
		t.Errorf("lobby = %q, want %q", got, want)
	}
}

func TestCloseFinishesQueuedAppends(t *testing.T) {
	// The writer sees the queue and Close's signal at once and may take
	// either first: repeat so both orders are covered.
	for i := range 8 {
		t.Run(fmt.Sprint(i), testCloseFinishesQueuedAppends)
	}
}

func testCloseFinishesQueuedAppends(t *testing.T) {
	g := newGate()
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{beforeBatch: g.hook})
	first := appendAsync(t.Context(), s, msg("lobby", "first"))
	<-g.entered
	const n = 10
	var rest []<-chan result
	for i := range n {
		rest = append(rest, appendAsync(t.Context(), s, msg("lobby", fmt.Sprint(i))))
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close must not return while appends are queued.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the queued appends were written", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(g.release)
	for _, c := range append(rest, first) {
		if r := await(t, c); r.err != nil {
			t.Errorf("Append queued before Close: %v", r.err)
		}
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s")
	}
	if got := s.Stats().Appends; got != n+1 {
		t.Errorf("Stats.Appends = %d, want %d", got, n+1)
	}
	if _, err := s.Append(t.Context(), msg("lobby", "late")); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Append after Close: %v, want chat.ErrClosed", err)
	}
}

func TestBusyIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openStore(t, path, Options{BusyTimeout: 50 * time.Millisecond})
	mustAppend(t, s, msg("lobby", "first"), 1)
	// Another process (here: connection) holds the write lock.
	conn, err := rawDB(t, path).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(t.Context(), msg("lobby", "blocked"))
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Append while another holds the lock: %v, want chat.ErrUnavailable", err)
	}
	// Reads go on beside a writer (WAL).
	if got, err := s.Recent(t.Context(), "lobby", 10); err != nil || texts(got) != "1:first" {
		t.Errorf("Recent while another holds the write lock = (%q, %v), want 1:first", texts(got), err)
	}
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, msg("lobby", "second"), 2)
}

func TestDiskFull(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{})
	mustAppend(t, s, msg("lobby", "small"), 1)
	// Cap the file at its current size: the next page it needs is "disk full".
	var pages int
	if err := s.wdb.QueryRowContext(t.Context(), "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(t.Context(), fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10)
	_, err := s.Append(t.Context(), msg("lobby", big))
	if err == nil {
		t.Fatal("Append beyond max_page_count succeeded")
	}
	if errors.Is(err, chat.ErrInvalid) || errors.Is(err, chat.ErrClosed) || !strings.Contains(err.Error(), "full") {
		t.Errorf("Append on a full disk: %v, want a wrapped disk-full error, not ErrInvalid or ErrClosed", err)
	}
	if _, err := s.wdb.ExecContext(t.Context(), "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, msg("lobby", big), 2)
}

func TestRetentionTrims(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s := openStore(t, path, Options{Retention: 10, TrimBatch: 4})
	for i := int64(1); i <= 25; i++ {
		mustAppend(t, s, msg("busy", strconv.FormatInt(i, 10)), i)
	}
	mustAppend(t, s, msg("quiet", "1"), 1)
	// Each transaction deletes what its appends pushed out: the table
	// holds exactly the retained messages.
	if got, want := storedRows(t, s, "busy"), 10; got != want {
		t.Errorf("rows of busy = %d, want %d", got, want)
	}
	if got, want := s.Stats().Trimmed, int64(15); got != want {
		t.Errorf("Stats.Trimmed = %d, want %d", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with a smaller retention: reads at once return only the newest
	// 3, while the writer works the backlog off in batches of TrimBatch.
	s = openStore(t, path, Options{Retention: 3, TrimBatch: 4})
	for _, tc := range []struct {
		name string
		call func() ([]chat.Message, error)
		want string
	}{
		{"Since", func() ([]chat.Message, error) { return s.Since(t.Context(), "busy", 0, 100) }, "23:23 24:24 25:25"},
		{"Recent", func() ([]chat.Message, error) { return s.Recent(t.Context(), "busy", 100) }, "23:23 24:24 25:25"},
		{"RecentTwo", func() ([]chat.Message, error) { return s.Recent(t.Context(), "busy", 2) }, "24:24 25:25"},
	} {
		got, err := tc.call()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := texts(got); got != tc.want {
			t.Errorf("%s after lowering retention = %q, want %q", tc.name, got, tc.want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for storedRows(t, s, "busy") > 3 {
		if time.Now().After(deadline) {
			t.Fatalf("rows of busy = %d after 5s, want 3: the backlog was not trimmed", storedRows(t, s, "busy"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := s.Stats().Trimmed, int64(7); got != want {
		t.Errorf("Stats.Trimmed after reopening = %d, want %d", got, want)
	}
	if got := storedRows(t, s, "quiet"); got != 1 {
		t.Errorf("rows of quiet = %d, want 1", got)
	}
	mustAppend(t, s, msg("busy", "26"), 26)
	if got := storedRows(t, s, "busy"); got != 3 {
		t.Errorf("rows of busy after one more = %d, want 3", got)
	}
}

// TestCrashKeepsAcknowledged kills a process that is appending (SIGKILL, no
// Close) and checks that every append it reported as done is in the file,
// and that seqs go on without a gap.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if path := os.Getenv("HXCHAT_SQLITE_CRASH_DB"); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "chat.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashKeepsAcknowledged$")
	cmd.Env = append(os.Environ(), "HXCHAT_SQLITE_CRASH_DB="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := make(map[int64]string) // seq → text
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		seq, text, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(seq, 10, 64)
		if !ok || err != nil {
			continue // test framework output
		}
		acked[n] = text
		if len(acked) == 300 {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged %d appends before it ended, want 300", len(acked))
	}

	s := openStore(t, path, Options{})
	got, err := s.Since(t.Context(), "lobby", 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[int64]string, len(got))
	for i, m := range got {
		if m.Seq != int64(i+1) {
			t.Fatalf("stored seqs after the crash have a gap: #%d is seq %d", i+1, m.Seq)
		}
		stored[m.Seq] = m.Text
	}
	for seq, text := range acked {
		if stored[seq] != text {
			t.Errorf("acknowledged seq %d (%q) after the crash: stored %q", seq, text, stored[seq])
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), len(got))
	m, err := s.Append(t.Context(), msg("lobby", "after crash"))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(got) + 1); m.Seq != want {
		t.Errorf("Append after the crash: Seq = %d, want %d", m.Seq, want)
	}
}

// crashChild appends from 4 goroutines and prints "seq text" for each
// acknowledged append until it is killed (or, if never killed, stops after
// a while).
func crashChild(path string) {
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := time.Now().Add(20 * time.Second)
	for p := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				m, err := s.Append(context.Background(), msg("lobby", fmt.Sprintf("p%d-%d", p, i)))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%d %s\n", m.Seq, m.Text) // unbuffered: one write per ack
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}
