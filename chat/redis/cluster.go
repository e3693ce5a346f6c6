package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
)

// On a Redis Cluster (OpenCluster) the Store is the same; what differs:
//
//   - Every script and MULTI already touches one slot (see the package
//     comment), and pipelines are split by go-redis per node; the rooms and
//     presence indexes are bucketed over slots.
//   - Append waits for a replica (Options.Replicas, 1 by default here):
//     the append script, then WAIT on the same connection to the room's
//     master, so an acknowledged message survives the loss of its master.
//     A master that has no replica (its only one died, or took over from
//     it) takes no posts: they fail with chat.ErrUnavailable after
//     ReplicaTimeout until a replica is back.
//   - The fan-out is sharded Pub/Sub (Redis 7): the append script
//     publishes with SPUBLISH, on the room's master only (the channel has
//     the room's hash tag), and the feed has one session per master that
//     owns watched rooms, each channel subscribed with its own SSUBSCRIBE
//     (one slot per command; go-redis's own resubscribe after a reconnect
//     sends them all in one, which Redis refuses across slots, so a
//     session is never reconnected). A session's first error, an
//     unsolicited SUNSUBSCRIBE (Redis sends it for the channels of a slot
//     that moved away) or a MOVED answer ends it: run reloads the slot
//     map and subscribes its rooms on their masters' sessions, and each
//     room catches up from its stream on the confirmation, as after any
//     reconnect. Presence notices stay on plain Pub/Sub (presence.go).
//   - go-redis notices a dead master only at a MOVED or its periodic
//     reload of the slot map; every connection error asks for a reload
//     (Store.reload), and the periodic one runs every clusterReload.

// clusterReload is how often the cluster client reads the slot map even
// when nothing failed (go-redis's default is a minute).
const clusterReload = 2 * time.Second

// OpenCluster connects to the Redis Cluster (7 or later) that the seeds
// (host:port of some of its nodes) belong to, and checks that every master
// runs Redis 7 or later. The Store is the same as Open's, but Append waits
// for Options.Replicas replicas (default 1; see Options.Replicas). An
// unreachable cluster gives an error wrapping chat.ErrUnavailable; the
// caller must Close the Store.
func OpenCluster(ctx context.Context, seeds []string, opts Options) (*Store, error) {
	opts.setDefaults()
	where := strings.Join(seeds, ",")
	if len(seeds) == 0 {
		return nil, errors.New("open redis cluster: no seed addresses")
	}
	o := &goredis.ClusterOptions{
		Addrs:                 seeds,
		DialTimeout:           opts.DialTimeout,
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		ContextTimeoutEnabled: true,
		PoolSize:              opts.PoolSize,
		// One dial attempt per call, as Open: a dead master fails a call
		// at once (connection refused) or within DialTimeout.
		DialerRetries: 1,
		// No command is retried on a connection error by a node's client;
		// the cluster client follows at most two redirects (MOVED, ASK,
		// or another try after a connection error), which a failover's
		// new slot map needs once. Append's script runs on the node's own
		// client (evalAndWait), never retried.
		MaxRetries:   -1,
		MaxRedirects: 2,
		// A slot map at most this old, even without errors.
		ClusterStateReloadInterval: clusterReload,
		// As Open: plain RESP2 Pub/Sub replies, no handshake.
		Protocol:        2,
		DisableIdentity: true,
	}
	client := goredis.NewClusterClient(o)
	if testHook != nil {
		client.AddHook(testHook)
	}
	if err := checkVersions(ctx, client); err != nil {
		_ = client.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open redis cluster %s: %w", where, ctx.Err())
		}
		if isPermanent(err) || errorsIsOld(err) {
			return nil, fmt.Errorf("open redis cluster %s: %w", where, err)
		}
		return nil, fmt.Errorf("open redis cluster %s: %w: %w", where, chat.ErrUnavailable, err)
	}
	s := newStore(client, client, 0, opts)
	s.replicas = opts.Replicas
	if s.replicas == 0 {
		s.replicas = 1
	}
	s.replicas = max(s.replicas, 0)
	return s, nil
}

// oldVersionError is a master older than Redis 7.
type oldVersionError struct{ addr, version string }

func (e *oldVersionError) Error() string {
	return fmt.Sprintf("master %s runs Redis %s; hxchat on a Redis Cluster needs 7.0 or later", e.addr, e.version)
}

func errorsIsOld(err error) bool {
	var old *oldVersionError
	return errors.As(err, &old)
}

// checkVersions asks every master for its version (INFO server).
func checkVersions(ctx context.Context, c *goredis.ClusterClient) error {
	return c.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
		info, err := node.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		v := infoField(info, "redis_version")
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err != nil || n < 7 {
			return &oldVersionError{addr: node.Options().Addr, version: v}
		}
		return nil
	})
}

// infoField returns the value of field name in the reply of INFO.
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// sharded is appendScript's last argument: "1" on a cluster, whose
// fan-out is sharded Pub/Sub (see feed.go).
func (s *Store) sharded() string {
	if s.cluster != nil {
		return "1"
	}
	return "0"
}
