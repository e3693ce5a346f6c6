// Package redis keeps hxchat's history on a Redis server (5.0 or later, Open)
// or a Redis Cluster (7 or later, OpenCluster; see cluster.go) and fans new
// messages out across nodes through it, so N hxchat nodes behind a load
// balancer share one Redis and every node sees every message once.
//
// Layout, with the default key prefix "hxchat:" (Options.KeyPrefix) and
// database N; NAME is a room's name, B a bucket, 0 to 15, of the room
// indexes (bucketOf: FNV-1a of NAME, modulo 16):
//
//	hxchat:room:{NAME}:seq       string: the room's newest seq
//	hxchat:room:{NAME}:epoch     string: the epoch of the room's history
//	hxchat:room:{NAME}:active    string: the room's last activity (Unix ms),
//	                             its score in the rooms index; it only grows
//	hxchat:room:{NAME}:log       stream: one entry per message, id "SEQ-0",
//	                             fields author, text, time (RFC 3339, ns),
//	                             key (the author's public key), and on a
//	                             deletion record deletes (the seq it
//	                             deleted; absent: 0); a deleted message's
//	                             entry is removed (XDEL)
//	hxchat:room:{NAME}:deleted   sorted set: the room's deleted messages
//	                             within its window; score: seq; member:
//	                             JSON {seq, key, author, time}, no text
//	                             (delete.go)
//	hxchat:rooms:{bB}            sorted set: the rooms of bucket B; score:
//	                             their last activity (rooms.go)
//	hxchat:presence:{NAME}       sorted set: who is in the room, per node
//	                             (presence.go)
//	hxchat:presence-rooms:{bB}   sorted set: the rooms of bucket B with
//	                             people in them (presence.go)
//	hxchat:janitor:lease         string, expiring: which node removes rooms
//	                             beyond Options.MaxRooms now (janitor.go)
//	hxchat:secret                string: the server secret (Store.Secret)
//	hxchat:dbN:room:{NAME}:live  Pub/Sub channel (sharded on a cluster): JSON
//	                             {seq, epoch, author, key, text, time} per
//	                             message, and deletes on a deletion record,
//	                             in seq order
//	hxchat:dbN:presence          Pub/Sub channel: presence changes
//
// Every key has a hash tag, or is one key alone, and every script and
// MULTI touches the keys of one hash slot: a room's keys (its name is the
// tag), one bucket, the lease or the secret. So the layout works on a
// Redis Cluster (7 or later): Open connects to a single server, OpenCluster
// to a cluster (cluster.go), and both give the same Store. No key is
// written by every post or every presence refresh: a post writes its
// room's keys and its room's bucket of the rooms index
// (the buckets spread the index over the cluster's slots, and its masters),
// a refresh its room's presence set and bucket. Channels are not keys; they
// carry the database number because Pub/Sub ignores databases. Redis must
// not evict these keys (maxmemory-policy noeviction): each Store's janitor
// bounds them instead (janitor.go), removing the least recently active
// rooms beyond Options.MaxRooms and, with Options.MaxAge, old messages.
//
// Epochs are per room. The append that starts a room's history (seq 1, or
// a room without an epoch key) sets the epoch key to a fresh random epoch;
// so after a flush, or a restart without persistence, the room's new
// messages carry a new epoch. A watcher that finds the room's newest seq
// below what it delivered (a failover that lost writes) replaces the epoch,
// with a compare-and-set (see feed.go). Reads return the epoch read in the
// same MULTI/EXEC as the entries. A room written before epochs existed has
// entries but no epoch key: its reads return the empty epoch until its next
// append gives it one (its seqs go on; readers see one change of epoch).
// A room the janitor removed has no keys left: its next append is seq 1 of
// a new epoch, like a room Redis lost.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
)

// Defaults for Options.
const (
	DefaultRetention      = 10_000
	DefaultKeyPrefix      = "hxchat:"
	DefaultDialTimeout    = time.Second
	DefaultReadTimeout    = time.Second
	DefaultWriteTimeout   = time.Second
	DefaultHealthInterval = 3 * time.Second
	DefaultMaxRooms       = 10_000
	DefaultSweepInterval  = time.Minute
	DefaultReplicaTimeout = time.Second
)

// Options configures a Store. Zero values select the defaults.
type Options struct {
	// Retention is how many messages per room the stream keeps
	// (DefaultRetention); older ones are trimmed by every append.
	Retention int
	// KeyPrefix starts every key and channel name (DefaultKeyPrefix), so
	// several deployments can share one Redis.
	KeyPrefix string
	// DialTimeout bounds connecting to Redis, ReadTimeout and WriteTimeout
	// each socket read and write of a command. They are what makes a call
	// fail fast (with chat.ErrUnavailable) when Redis is dead instead of
	// hanging; a context deadline, when shorter, wins.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// PoolSize caps the command connections (go-redis's default, 10 per CPU).
	PoolSize int
	// HealthInterval is how often the fan-out connection is pinged; one that
	// has not answered by the next ping is replaced
	// (DefaultHealthInterval).
	HealthInterval time.Duration
	// PresenceHeartbeat paces presence (DefaultPresenceHeartbeat): each
	// node refreshes its members every half of it, and the members of a
	// node that stopped doing so vanish within two of it.
	PresenceHeartbeat time.Duration
	// MaxRooms bounds the rooms whose history Redis keeps
	// (DefaultMaxRooms). Beyond it, the janitor removes the keys of the
	// least recently active rooms (their stream, counter, epoch), in the
	// background; a removed room posted to again starts over at seq 1 in a
	// new epoch. Between sweeps the rooms may exceed it by the rooms
	// created meanwhile.
	MaxRooms int
	// MaxAge, when positive, is how long messages are kept: the janitor
	// removes older ones (by their time) from the streams, within a sweep
	// interval or so of their passing it; a room keeps its counter and
	// epoch, so its seqs go on. Zero keeps messages until the retention or
	// MaxRooms removes them.
	MaxAge time.Duration
	// SweepInterval is how often the janitor sweeps: DefaultSweepInterval,
	// or with MaxAge min(MaxAge/10, DefaultSweepInterval) but at least a
	// second. An append that creates a room also makes it check MaxRooms
	// soon.
	SweepInterval time.Duration
	// Replicas is how many replicas must have a message before Append
	// returns it (Redis's WAIT, on the connection that stored it). Zero
	// selects the default: 1 for OpenCluster, none for Open (a single
	// server may have no replica); a negative value never waits. When too
	// few replicas confirm within ReplicaTimeout, Append returns an error
	// wrapping chat.ErrUnavailable, though the message may be stored.
	Replicas int
	// ReplicaTimeout bounds the wait for the replicas
	// (DefaultReplicaTimeout).
	ReplicaTimeout time.Duration
	// Logger receives the fan-out's warnings (slog.Default()).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.PresenceHeartbeat <= 0 {
		o.PresenceHeartbeat = DefaultPresenceHeartbeat
	}
	if o.MaxRooms <= 0 {
		o.MaxRooms = DefaultMaxRooms
	}
	if o.MaxAge < 0 {
		o.MaxAge = 0
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
		if o.MaxAge > 0 {
			o.SweepInterval = max(min(o.MaxAge/10, DefaultSweepInterval), time.Second)
		}
	}
	if o.ReplicaTimeout <= 0 {
		o.ReplicaTimeout = DefaultReplicaTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Store is a chat.Store on Redis; its Watch carries every node's new
// messages to every other node. It is safe for concurrent use.
type Store struct {
	client  goredis.UniversalClient
	cluster *goredis.ClusterClient // the same client on a cluster, else nil
	// replicas is how many replicas Append waits for (0: none); see
	// Options.Replicas.
	replicas int
	opts     Options
	chanPre  string // channel name up to the room name

	closed atomic.Bool
	ctx    context.Context // ends at Close; bounds background calls
	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	// The fan-out: see feed.go.
	mu     sync.Mutex
	rooms  map[string]*room    // watched rooms by name
	dirty  map[string]struct{} // rooms whose subscription may need a change
	wake   chan struct{}       // tells run to reconcile subscriptions
	retry  chan struct{}       // asks run to wake the receiver soon
	broken chan *session       // a cluster session asks run to end it

	presence *Presence // see presence.go

	// The throttle of the rooms index updates: see indexDue.
	indexEvery time.Duration        // indexEvery, but in tests
	idxMu      sync.Mutex           // guards indexed
	indexed    map[string]indexMark // room → this Store's last index update of it

	// The janitor: see janitor.go.
	created chan struct{} // an append created a room
	evicted atomic.Int64  // rooms removed for MaxRooms
	expired atomic.Int64  // messages removed for MaxAge
}

var (
	_ chat.Store        = (*Store)(nil)
	_ chat.Pinger       = (*Store)(nil)
	_ chat.SecretKeeper = (*Store)(nil)
)

// Open connects to the Redis at rawURL (redis://[user:password@]host:port/db,
// rediss:// for TLS, or unix://) and pings it. An unreachable server gives an
// error wrapping chat.ErrUnavailable; the caller must Close the Store.
// Append waits for no replica unless Options.Replicas is positive.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	opts.setDefaults()
	where := redact(rawURL)
	o, err := goredis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("open redis %s: %w", where, err)
	}
	o.DialTimeout = opts.DialTimeout
	o.ReadTimeout = opts.ReadTimeout
	o.WriteTimeout = opts.WriteTimeout
	o.ContextTimeoutEnabled = true
	if opts.PoolSize > 0 {
		o.PoolSize = opts.PoolSize
	}
	// One dial attempt per call: a dead server must fail a POST within
	// DialTimeout, not after go-redis's five attempts.
	o.DialerRetries = 1
	// No command is retried: a retried EVALSHA whose reply was lost would
	// store the message twice. Dead pooled connections are dropped by the
	// pool's check before use, so a restarted server needs no retry.
	o.MaxRetries = -1
	// RESP2, whatever the URL says: the fan-out relies on plain Pub/Sub
	// replies (subscribe confirmations in line with the messages), and it
	// needs no handshake command Redis 5 or 6 lacks.
	o.Protocol = 2
	o.DisableIdentity = true

	client := goredis.NewClient(o)
	if testHook != nil {
		client.AddHook(testHook)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open redis %s: %w", where, ctx.Err())
		}
		if isPermanent(err) {
			return nil, fmt.Errorf("open redis %s: %w", where, err)
		}
		return nil, fmt.Errorf("open redis %s: %w: %w", where, chat.ErrUnavailable, err)
	}
	s := newStore(client, nil, o.DB, opts)
	s.replicas = max(opts.Replicas, 0)
	return s, nil
}

// newStore starts the Store on a connected client (cluster is the same
// client when it is one) of database db.
func newStore(client goredis.UniversalClient, cluster *goredis.ClusterClient, db int, opts Options) *Store {
	s := &Store{
		client:  client,
		cluster: cluster,
		opts:    opts,
		chanPre: opts.KeyPrefix + "db" + strconv.Itoa(db) + ":room:{",
		done:    make(chan struct{}),
		rooms:   make(map[string]*room),
		dirty:   make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		retry:   make(chan struct{}, 1),
		broken:  make(chan *session),
		created: make(chan struct{}, 1),

		indexEvery: indexEvery,
		indexed:    make(map[string]indexMark),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.presence = newPresence(s, db)
	s.wg.Add(2)
	go s.run()
	go s.janitor()
	return s
}

// testHook, when set (by this package's tests), sees every command of
// every Store's client.
var testHook goredis.Hook

// redact returns rawURL without its password, for error messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// roomKeys are the names of one room's keys and channel.
type roomKeys struct{ seq, epoch, log, active, deleted, live string }

func (s *Store) keys(room string) roomKeys {
	base := s.opts.KeyPrefix + "room:{" + room + "}:"
	return roomKeys{seq: base + "seq", epoch: base + "epoch", log: base + "log", active: base + "active",
		deleted: base + "deleted", live: s.chanPre + room + "}:live"}
}

// roomOf returns the room whose channel is ch.
func (s *Store) roomOf(ch string) (string, bool) {
	name, ok := strings.CutPrefix(ch, s.chanPre)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(name, "}:live")
}

// appendScript stores one message atomically: it takes the next seq, adds
// the stream entry "SEQ-0" trimmed to the retention, moves the counter and
// publishes the message, so the channel carries a room's messages in seq
// order and no message is published that is not stored.
//
// The entry is added before the counter (and a new epoch) is set: XADD is
// the step that can fail (wrong type, an id not above the stream's top),
// and a script that fails half way keeps its earlier writes. A counter
// that is missing while the stream is not (deleted or evicted) resumes
// after the stream's top instead of failing every append from then on.
//
// The message of seq 1 starts a new history (a new room, or one whose data
// Redis lost): it sets the room's epoch key to ARGV[10], a fresh epoch the
// caller made, as does any append to a room without an epoch key (one
// written before epochs existed). Every other append keeps the epoch. The
// script returns {seq, epoch, activity} and publishes the epoch with the
// message.
//
// It also records the room's activity in its active key: the message's
// time (Unix ms), or 1 ms past the room's last activity when that is not
// earlier (clocks of several nodes, posts within one ms), so every append
// moves it and the janitor's check (has the room been posted to since the
// index said so?) is exact. The rooms index is not touched here: it is in
// other hash slots than the room (see rooms.go); Append sends indexScript
// right after this script, in the same round trip (at most once per
// indexEvery per room and Store: see indexDue).
//
// KEYS: seq counter, stream, epoch, activity (one hash tag: one slot).
// ARGV: retention, channel, author, text, time, author key, time (Unix
// ms), a fresh epoch, and "1" to publish with SPUBLISH (sharded Pub/Sub,
// on a cluster: the channel has the room's hash tag, so it is in the
// script's slot) instead of PUBLISH (one Redis, which may be Redis 5).
var appendScript = goredis.NewScript(headLua + "local maxlen = ARGV[1]\n" + appendLua("", ""))

// headLua (the start of appendScript and deleteScript) reads the room's
// newest seq into cur: its counter, or the top of its stream when the
// counter is missing.
const headLua = `
local cur = redis.call('GET', KEYS[1])
if cur then
  cur = tonumber(cur)
else
  cur = 0
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if top[1] then cur = tonumber(string.match(top[1][1], '^%d+')) end
end
`

// appendLua is the rest of appendScript (after headLua), which
// deleteScript shares: the append of seq cur+1, trimmed to maxlen entries.
// fields are more stream fields for XADD (Lua: ", 'name', value"), and
// published more fields of the published JSON (", name = value").
func appendLua(fields, published string) string {
	return `
local seq = cur + 1
local epoch = redis.call('GET', KEYS[3])
local fresh = seq == 1 or not epoch
if fresh then epoch = ARGV[8] end
redis.call('XADD', KEYS[2], 'MAXLEN', maxlen, string.format('%d-0', seq),
  'author', ARGV[3], 'text', ARGV[4], 'time', ARGV[5], 'key', ARGV[6]` + fields + `)
if fresh then redis.call('SET', KEYS[3], epoch) end
redis.call('SET', KEYS[1], string.format('%d', seq))
local active = tonumber(ARGV[7])
local prev = tonumber(redis.call('GET', KEYS[4]))
if prev and active <= prev then active = prev + 1 end
redis.call('SET', KEYS[4], string.format('%d', active))
local publish = 'PUBLISH'
if ARGV[9] == '1' then publish = 'SPUBLISH' end
redis.call(publish, ARGV[2], cjson.encode({seq = seq, epoch = epoch, author = ARGV[3], key = ARGV[6], text = ARGV[4], time = ARGV[5]` + published + `}))
return {seq, epoch, active}
`
}

// Append implements chat.Store. The message is stored, trimmed and
// published in one atomic step, and its room's entry of the rooms index
// moved right after (at most once per indexEvery per room and Store: see
// indexDue); an error means it may not be stored (it never means it was
// stored twice), and one wrapping chat.ErrUnavailable means Redis could
// not be reached, or (with Options.Replicas) that no replica had the
// message in time. When Append returns nil, the message is on the master
// and, with Options.Replicas, on that many replicas.
func (s *Store) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	what := fmt.Sprintf("append to %q", m.Room)
	if err := s.check(ctx, what); err != nil {
		return chat.Message{}, err
	}
	k := s.keys(m.Room)
	keys := []string{k.seq, k.log, k.epoch, k.active}
	args := []any{s.opts.Retention, k.live, m.Author, m.Text, m.Time.Format(time.RFC3339Nano), m.AuthorKey,
		m.Time.UnixMilli(), chat.NewEpoch(), s.sharded()}
	due := s.indexDue(m.Room, m.Time.UnixMilli())
	if s.replicas > 0 {
		return s.appendReplicated(ctx, m, keys, args, due)
	}
	if !due {
		// The room's entry was moved less than indexEvery ago: the append
		// script alone (EVALSHA, EVAL when the script is not loaded: it
		// did not run then).
		res, err := appendScript.Run(ctx, s.client, keys, args...).Slice()
		if err != nil {
			return chat.Message{}, s.fail(ctx, what, err)
		}
		return s.appended(ctx, m, res, nil)
	}
	// The script and the index update go in one round trip, the update
	// right after the script: see indexScript.
	run := func() (app, idx *goredis.Cmd) {
		pipe := s.client.Pipeline()
		app = appendScript.EvalSha(ctx, pipe, keys, args...)
		idx = indexScript.EvalSha(ctx, pipe, []string{s.roomsKeyOf(m.Room)}, m.Time.UnixMilli(), m.Room)
		_, _ = pipe.Exec(ctx) // each command has its error
		return app, idx
	}
	app, idx := run()
	if isNoScript(app.Err()) {
		// A new or flushed server: the append did not run (the index
		// update may have: then it runs twice, which moves the score by
		// 1 ms). Never run again an append that ran.
		for _, sc := range []*goredis.Script{appendScript, indexScript} {
			if err := sc.Load(ctx, s.client).Err(); err != nil {
				s.indexFailed(m.Room)
				return chat.Message{}, s.fail(ctx, what, err)
			}
		}
		app, idx = run()
	}
	if app.Err() == nil && isNoScript(idx.Err()) {
		idx = indexScript.Run(ctx, s.client, []string{s.roomsKeyOf(m.Room)}, m.Time.UnixMilli(), m.Room)
	}
	res, err := app.Slice()
	if err != nil {
		if idx.Err() != nil {
			s.indexFailed(m.Room)
		}
		return chat.Message{}, s.fail(ctx, what, err)
	}
	return s.appended(ctx, m, res, idx)
}

// indexEvery is how often at most a Store sends the index update of a
// room (indexScript) with its appends. An append in between sends the
// append script alone, which moves the room's active key all the same:
// the index's score may then lag the room's activity (by up to
// indexEvery while it is posted to, and for good when its last posts
// were skipped), which only the list of active rooms shows; the
// janitor's checks go by the active key, and it raises the score of a
// room it keeps for that (see evictRooms).
const indexEvery = time.Second

// indexMark is when a Store last sent a room's index update: its clock,
// and the time of the message (Unix ms).
type indexMark struct {
	sent time.Time
	at   int64
}

// indexDue reports whether an append of a message of time at (Unix ms) to
// room sends its index update: yes unless this Store sent one within
// indexEvery, by its clock and by the messages' times (a message stamped
// much later, as tests do, is not held back), and it did not fail. It
// counts the update as sent now, so concurrent appends to the room skip
// it. The map is bounded: it is emptied when it holds four times MaxRooms
// rooms (the rooms in it then update once more).
func (s *Store) indexDue(room string, at int64) bool {
	if s.indexEvery <= 0 {
		return true
	}
	now := time.Now()
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if last, ok := s.indexed[room]; ok && now.Sub(last.sent) < s.indexEvery &&
		at >= last.at && at-last.at < s.indexEvery.Milliseconds() {
		return false
	}
	s.markLocked(room, indexMark{now, at})
	return true
}

// markLocked records mark for room; s.idxMu is held.
func (s *Store) markLocked(room string, mark indexMark) {
	if len(s.indexed) >= 4*s.opts.MaxRooms {
		clear(s.indexed)
	}
	s.indexed[room] = mark
}

// indexSent records an index update of room sent now (for a message of
// time at) outside indexDue.
func (s *Store) indexSent(room string, at int64) {
	if s.indexEvery <= 0 {
		return
	}
	s.idxMu.Lock()
	s.markLocked(room, indexMark{time.Now(), at})
	s.idxMu.Unlock()
}

// indexFailed makes the next append to room send its index update.
func (s *Store) indexFailed(room string) {
	s.idxMu.Lock()
	delete(s.indexed, room)
	s.idxMu.Unlock()
}

// appended finishes an append whose script returned res: it checks the
// reply, logs a failure of the index update idx (nil: none was sent; the
// update is then sent now for a room's first message, seq 1, as the
// janitor may be removing the room's old entry), and tells the janitor
// about a new room.
func (s *Store) appended(ctx context.Context, m chat.Message, res []any, idx *goredis.Cmd) (chat.Message, error) {
	seq, epoch, active, ok := appendReply(res)
	if !ok {
		// Stored, but the reply is not what the script returns.
		return chat.Message{}, fmt.Errorf("append to %q: unexpected reply %v from the append script", m.Room, res)
	}
	m.Seq, m.Epoch = seq, epoch
	if idx == nil && seq == 1 {
		// A new room, or one the janitor removed: its entry must move
		// past the score the janitor read, whatever the throttle says.
		idx = indexScript.Run(ctx, s.client, []string{s.roomsKeyOf(m.Room)}, active, m.Room)
		s.indexSent(m.Room, m.Time.UnixMilli())
	}
	// The message is stored and published: a failure to index it is only
	// logged. The room is then missing from the index (the list of active
	// rooms, the janitor's bound), or has an older score, until its next
	// append.
	if idx != nil {
		if err := idx.Err(); err != nil {
			s.indexFailed(m.Room)
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redis: cannot update the rooms index; the room is listed again at its next post",
				slog.String("room", m.Room), slog.Any("err", err))
		}
	}
	if seq == 1 {
		s.roomCreated() // the janitor checks MaxRooms soon
	}
	return m, nil
}

// errNoReplica is WAIT's answer that too few replicas have a message.
var errNoReplica = errors.New("not yet on a replica; the message may be stored")

// appendReplicated is Append when Options.Replicas asks for replicas: the
// script, then WAIT on the same connection (WAIT counts the writes of the
// connection it is sent on), on the master of the room's slot. The index
// update, when due (indexDue), goes to its own bucket's master afterwards,
// whether or not the append succeeded (as in Append). A message stored but not confirmed by
// enough replicas within ReplicaTimeout gives an error wrapping
// chat.ErrUnavailable and errNoReplica: a failover before the replica has
// it would lose it, so the POST is not acknowledged; if it survives, it
// is delivered as any other.
func (s *Store) appendReplicated(ctx context.Context, m chat.Message, keys []string, args []any, due bool) (chat.Message, error) {
	what := fmt.Sprintf("append to %q", m.Room)
	reply, waitErr, err := s.evalAndWait(ctx, appendScript, keys, args)
	res, _ := reply.([]any) // anything else: appended reports it
	var idx *goredis.Cmd
	if due {
		idx = indexScript.Run(ctx, s.client, []string{s.roomsKeyOf(m.Room)}, m.Time.UnixMilli(), m.Room)
	}
	if err != nil {
		if idx != nil && idx.Err() != nil {
			s.indexFailed(m.Room)
		}
		return chat.Message{}, s.fail(ctx, what, err)
	}
	out, err := s.appended(ctx, m, res, idx)
	if err != nil {
		return chat.Message{}, err
	}
	if waitErr != nil {
		return chat.Message{}, s.fail(ctx, fmt.Sprintf("%s (seq %d)", what, out.Seq), waitErr)
	}
	return out, nil
}

// evalAndWait runs sc (appendScript or deleteScript) on one connection to
// the master of the room's slot and then WAIT on it: err means the script
// failed (it may still have run when the reply was lost), waitErr that it
// returned res but too few replicas confirmed it (errNoReplica, or WAIT's
// own error). A reply that is a number (deleteScript's refusal: nothing
// was written) is returned without a WAIT.
func (s *Store) evalAndWait(ctx context.Context, sc *goredis.Script, keys []string, args []any) (res any, waitErr, err error) {
	var node *goredis.Client
	if s.cluster != nil {
		if node, err = s.cluster.MasterForKey(ctx, keys[0]); err != nil {
			return nil, nil, err
		}
	} else {
		node = s.client.(*goredis.Client)
	}
	conn := node.Conn() // one connection for both commands
	defer conn.Close()
	res, err = sc.EvalSha(ctx, conn, keys, args...).Result()
	if isNoScript(err) {
		// The script did not run (a new or flushed node): load it there.
		if err = sc.Load(ctx, conn).Err(); err != nil {
			return nil, nil, err
		}
		res, err = sc.EvalSha(ctx, conn, keys, args...).Result()
	}
	if err != nil {
		return nil, nil, err
	}
	if _, refused := res.(int64); refused {
		return res, nil, nil
	}
	// go-redis reads WAIT's reply within its timeout plus 10 s: the
	// context bounds a master that hangs instead.
	wctx, cancel := context.WithTimeout(ctx, s.opts.ReplicaTimeout+s.opts.ReadTimeout)
	defer cancel()
	n, err := conn.Wait(wctx, s.replicas, s.opts.ReplicaTimeout).Result()
	switch {
	case err != nil:
		return res, fmt.Errorf("%w: %w", errNoReplica, err), nil
	case n < int64(s.replicas):
		return res, errNoReplica, nil
	}
	return res, nil, nil
}

// appendReply reads appendScript's {seq, epoch, activity}.
func appendReply(res []any) (seq int64, epoch string, active int64, ok bool) {
	if len(res) != 3 {
		return 0, "", 0, false
	}
	seq, ok1 := res[0].(int64)
	epoch, ok2 := res[1].(string)
	active, ok3 := res[2].(int64)
	return seq, epoch, active, ok1 && ok2 && ok3 && seq > 0 && epoch != ""
}

// Since implements chat.Store. The messages carry the epoch the room had
// when they were read (read with them, in one MULTI/EXEC): "" for a room
// stored before epochs and not appended to since. Deleted messages are
// placeholders (see query).
func (s *Store) Since(ctx context.Context, room string, after int64, limit int) ([]chat.Message, error) {
	what := fmt.Sprintf("since in %q", room)
	if err := s.check(ctx, what); err != nil {
		return nil, err
	}
	if limit <= 0 || after == math.MaxInt64 {
		return nil, nil
	}
	_, msgs, err := s.query(ctx, room, query{kind: sinceQuery, after: max(after, 0), n: limit}, nil, nil)
	if err != nil {
		return nil, s.failRead(ctx, what, err)
	}
	return msgs, nil
}

// Recent implements chat.Store, with epochs and placeholders as Since.
func (s *Store) Recent(ctx context.Context, room string, n int) ([]chat.Message, error) {
	what := fmt.Sprintf("recent in %q", room)
	if err := s.check(ctx, what); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	_, msgs, err := s.query(ctx, room, query{kind: recentQuery, n: n}, nil, nil)
	if err != nil {
		return nil, s.failRead(ctx, what, err)
	}
	return msgs, nil
}

// Before implements chat.Store, with epochs and placeholders as Since.
func (s *Store) Before(ctx context.Context, room string, before int64, n int) ([]chat.Message, error) {
	what := fmt.Sprintf("before in %q", room)
	if err := s.check(ctx, what); err != nil {
		return nil, err
	}
	if n <= 0 || before <= 1 {
		return nil, nil
	}
	_, msgs, err := s.query(ctx, room, query{kind: beforeQuery, before: before, n: n}, nil, nil)
	if err != nil {
		return nil, s.failRead(ctx, what, err)
	}
	return msgs, nil
}

// snapshot is what read returns: one room's counter, epoch, entries and
// deleted members as they were at one moment.
type snapshot struct {
	seq     int64  // the counter (0 when missing)
	epoch   string // "" when the room has no epoch key
	entries []goredis.XMessage
	deleted []string // members of the deleted set; nil when not read
}

// read runs the stream read of q with the room's counter and epoch (and,
// withDeleted, the matching read of its deleted set, and extra's commands)
// in one MULTI/EXEC: the epoch is the one the entries belong to, however
// appends, deletions, flushes and epoch changes interleave.
func (s *Store) read(ctx context.Context, room string, q query, withDeleted bool, extra func(p goredis.Pipeliner)) (snapshot, error) {
	k := s.keys(room)
	var (
		head *goredis.SliceCmd
		xs   *goredis.XMessageSliceCmd
		ds   *goredis.StringSliceCmd
	)
	if _, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		head = p.MGet(ctx, k.seq, k.epoch)
		if extra != nil {
			extra(p)
		}
		xs = q.entries(ctx, p, k.log)
		if withDeleted {
			ds = q.deleted(ctx, p, k.deleted)
		}
		return nil
	}); err != nil {
		return snapshot{}, err
	}
	snap := snapshot{entries: xs.Val()}
	if ds != nil {
		snap.deleted = append([]string{}, ds.Val()...)
	}
	var err error
	if snap.seq, snap.epoch, err = parseHead(head.Val()); err != nil {
		return snapshot{}, fmt.Errorf("room %q: %w", room, err)
	}
	return snap, nil
}

// parseHead reads the reply of MGET seq epoch.
func parseHead(vals []any) (seq int64, epoch string, err error) {
	if len(vals) != 2 {
		return 0, "", fmt.Errorf("MGET returned %d values, want 2", len(vals))
	}
	if v, ok := vals[0].(string); ok {
		if seq, err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, "", fmt.Errorf("bad seq counter %q", v)
		}
	}
	epoch, _ = vals[1].(string)
	return seq, epoch, nil
}

// Ping implements chat.Pinger: it reports whether Redis answers, with an
// error wrapping chat.ErrUnavailable when it does not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(ctx, "ping redis"); err != nil {
		return err
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.fail(ctx, "ping redis", err)
	}
	return nil
}

// Secret implements chat.SecretKeeper: the key KeyPrefix+"secret", set to
// random bytes by the first call of any node (SET NX) and read by every
// call, so all nodes sharing the Redis sign with the same secret. An error
// wrapping chat.ErrUnavailable means Redis could not be reached.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	const what = "secret"
	if err := s.check(ctx, what); err != nil {
		return nil, err
	}
	key := s.opts.KeyPrefix + "secret"
	if err := s.client.SetNX(ctx, key, chat.NewSecret(), 0).Err(); err != nil {
		return nil, s.fail(ctx, what, err)
	}
	secret, err := s.client.Get(ctx, key).Bytes()
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	if len(secret) != chat.SecretLen {
		return nil, fmt.Errorf("%s: %s holds %d bytes, want %d (delete it to make a new secret)", what, key, len(secret), chat.SecretLen)
	}
	return secret, nil
}

// Close stops the fan-out (no watcher is called once Close returns) and
// closes the connections. Later calls return chat.ErrClosed; a second Close
// returns nil.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.presence.close() // takes this node's members out while Redis is at hand
	s.cancel()
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	for _, r := range s.rooms {
		for _, w := range r.watchers {
			w.stopped.Store(true)
		}
	}
	clear(s.rooms)
	s.mu.Unlock()
	return s.client.Close()
}

// check fails calls on a closed store or with a finished context.
func (s *Store) check(ctx context.Context, what string) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", what, chat.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// fail wraps an error of go-redis: the caller's context if it ended,
// chat.ErrClosed after Close, the server's own error for a command Redis
// refused for good, and chat.ErrUnavailable for everything else (refused or
// timed out connections, a server loading its data or out of memory).
func (s *Store) fail(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case s.closed.Load():
		return fmt.Errorf("%s: %w", what, chat.ErrClosed)
	case isPermanent(err):
		return fmt.Errorf("%s: %w", what, err)
	default:
		s.reload()
		return fmt.Errorf("%s: %w: %w", what, chat.ErrUnavailable, err)
	}
}

// reload asks a cluster client to read the slot map again soon (at most
// one read at a time): go-redis does not notice a dead master by itself
// until its next periodic reload, so every connection error asks, and a
// failover's new master takes over as soon as the cluster knows it.
func (s *Store) reload() {
	if s.cluster != nil {
		s.cluster.ReloadState(context.Background())
	}
}

// isNoScript reports whether err is Redis's answer to an EVALSHA of a
// script it does not have (the script did not run).
func isNoScript(err error) bool { return err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") }

// transient are the prefixes of server errors that pass with time.
var transient = []string{"MOVED", "ASK", "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "MISCONF", "OOM", "NOREPLICAS"}

// isPermanent reports whether err is a reply of the server that retrying
// will not change (a wrong key type, a script error, bad credentials).
func isPermanent(err error) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	for _, p := range transient {
		if goredis.HasErrorPrefix(err, p) {
			return false
		}
	}
	return true
}

func entryID(seq int64) string { return strconv.FormatInt(seq, 10) + "-0" }

// entrySeq is the seq of a stream entry id made by entryID.
func entrySeq(id string) (int64, error) {
	seqText, _, _ := strings.Cut(id, "-")
	return strconv.ParseInt(seqText, 10, 64)
}

// backoff waits after a failed receive from Redis, each time twice as long
// as the last (from 20 ms up to 1 s); it reports false if quit closed
// first. The caller resets *wait to 0 after a success.
func backoff(wait *time.Duration, quit <-chan struct{}) bool {
	*wait = min(max(2**wait, 20*time.Millisecond), time.Second)
	t := time.NewTimer(*wait)
	defer t.Stop()
	select {
	case <-quit:
		return false
	case <-t.C:
		return true
	}
}

func decodeEntry(room string, x goredis.XMessage) (chat.Message, error) {
	seq, err := entrySeq(x.ID)
	if err != nil {
		return chat.Message{}, fmt.Errorf("room %q: bad stream entry id %q", room, x.ID)
	}
	field := func(name string) string { v, _ := x.Values[name].(string); return v }
	t, err := time.Parse(time.RFC3339Nano, field("time"))
	if err != nil {
		return chat.Message{}, fmt.Errorf("room %q: entry %s: bad time: %w", room, x.ID, err)
	}
	var deletes int64 // a deletion record's; entries from before deletions have none
	if v := field("deletes"); v != "" {
		if deletes, err = strconv.ParseInt(v, 10, 64); err != nil || deletes <= 0 {
			return chat.Message{}, fmt.Errorf("room %q: entry %s: bad deletes %q", room, x.ID, v)
		}
	}
	return chat.Message{Room: room, Seq: seq, Author: field("author"), AuthorKey: field("key"), Text: field("text"), Time: t, Deletes: deletes}, nil
}
