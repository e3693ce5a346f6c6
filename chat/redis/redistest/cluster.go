package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

const (
	// clusterSize is 3 masters, each with one replica.
	clusterSize = 6
	// clusterSlots is the number of hash slots in every Redis Cluster.
	clusterSlots = 16384
	// clusterNodeTimeout is how long a node may be unreachable before a
	// peer flags it PFAIL. Failover takes about twice this (2.1 to 2.9 s
	// measured on 2 cores under -race). Much less and a busy machine starts
	// false failovers.
	clusterNodeTimeout = 1000 * time.Millisecond
	// clusterReadyTimeout bounds how long the cluster may take to form, and
	// a restarted node to rejoin.
	clusterReadyTimeout = 30 * time.Second
	// pollInterval is how often the harness asks the nodes about their state.
	pollInterval = 50 * time.Millisecond
)

// Cluster is a Redis Cluster of 3 masters and 3 replicas on 127.0.0.1, each
// node with its data in a temporary directory. Every node is stopped when
// the test ends.
//
// Its methods ask the living nodes about the current topology each time,
// so they stay right across failovers.
type Cluster struct {
	// Nodes are every node, masters and replicas, in the order they were
	// started; their roles change with failovers.
	Nodes []*ClusterNode
}

// ClusterNode is one redis-server of a Cluster.
type ClusterNode struct {
	// Addr is 127.0.0.1:port; it stays the same across Kill and Restart.
	// The cluster bus listens on port+10000.
	Addr string
	// ID is the node's cluster node ID; it survives Restart (it is kept in
	// the node's nodes.conf).
	ID string

	c      *Cluster
	path   string
	args   []string
	client *goredis.Client // straight to this node, never redirected

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *lockedBuffer
	// When the node was killed: the slot ranges it owned, and its replicas.
	slots    [][2]int
	replicas []string
}

// StartCluster starts six redis-servers in cluster mode, joins them with
// redis-cli --cluster create into 3 masters with one replica each, and
// waits until every node says cluster_state:ok, every node sees the same
// slot map covering all 16384 slots, and every replica's link to its master
// is up. It calls t.Fatal if it cannot (t.Skip outside CI when redis-server
// 7 or later, or redis-cli, is not installed).
//
// The nodes run with:
//   - --cluster-node-timeout 1000: failover in two to three seconds.
//   - --cluster-replica-validity-factor 0: a replica may always take over,
//     however long its link to the master was down. With the default, a
//     replica that lagged behind on a loaded machine may refuse, and the
//     slots stay down.
//   - --repl-diskless-sync-delay 0: a master sends a replica its first full
//     copy at once instead of after five seconds (diskless sync is already
//     the default in Redis 7), so the cluster is ready, and a restarted node
//     back in sync, sooner.
//   - --repl-ping-replica-period 1: CLUSTER SLOTS leaves out a replica
//     whose replication offset is still 0, and on a fresh master nothing
//     but these pings (every 10 s by default) moves the offset. Without it,
//     clients and this harness see no replicas for the first ten seconds.
//   - --appendonly yes with the default fsync every second: acknowledged
//     writes a test waited for (WAIT) survive on the replica anyway, and an
//     fsync per write would slow six servers on two cores.
//   - not --min-replicas-to-write: after a failover the new master has no
//     replica until the old one rejoins, and it must take writes.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	server, cli := clusterTools(t)
	dir := t.TempDir()
	c := &Cluster{}
	for range clusterSize {
		n, err := startClusterNode(t, server, dir)
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		n.c = c
		c.Nodes = append(c.Nodes, n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Seeds()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitReady(ctx, nil); err != nil {
		t.Fatalf("redistest: cluster did not become ready within %v: %v", clusterReadyTimeout, err)
	}
	return c
}

// clusterTools returns the paths of redis-server and redis-cli, making sure
// the server is version 7 or later (sharded pub/sub, CLUSTER SHARDS).
func clusterTools(t testing.TB) (server, cli string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; CI must provide Redis 7 or later (apt-get install redis-server, which brings redis-cli)", msg)
		}
		t.Skipf("%s; install Redis 7 or later (apt-get install redis-server, which brings redis-cli) to run this test", msg)
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		missing("redis-server is not installed (%v)", err)
	}
	cli, err = exec.LookPath("redis-cli")
	if err != nil {
		missing("redis-cli is not installed (%v)", err)
	}
	out, err := exec.Command(server, "--version").Output()
	if err != nil {
		t.Fatalf("redistest: %s --version: %v", server, err)
	}
	m := regexp.MustCompile(`v=(\d+)\.`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("redistest: cannot read the version of %s from %q", server, out)
	}
	if major, _ := strconv.Atoi(string(m[1])); major < 7 {
		missing("redis-server is version %s (%s), Redis Cluster tests need 7 or later", m[1], strings.TrimSpace(string(out)))
	}
	return server, cli
}

// startClusterNode starts one cluster-mode redis-server on a free port whose
// bus port (+10000) is free too, in its own directory under dir.
func startClusterNode(t testing.TB, path, dir string) (*ClusterNode, error) {
	var errs []error
	// The ports are free when picked but may be taken before redis-server
	// binds them; pick again a few times.
	for range 5 {
		port, err := freeClusterPort()
		if err != nil {
			return nil, fmt.Errorf("pick a port: %w", err)
		}
		nodeDir := filepath.Join(dir, strconv.Itoa(port))
		if err := os.Mkdir(nodeDir, 0o755); err != nil {
			return nil, err
		}
		n := &ClusterNode{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), path: path}
		// Each node has its own directory: replicas write the RDB of a
		// full sync to dump.rdb, and the AOF lives in appendonlydir, both
		// relative to --dir.
		n.args = []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", nodeDir,
			"--daemonize", "no", "--logfile", "", "--save", "",
			"--appendonly", "yes",
			"--cluster-enabled", "yes",
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port),
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout / time.Millisecond)),
			// Announce the address clients dial, so CLUSTER SLOTS and
			// MOVED never name another interface.
			"--cluster-announce-ip", "127.0.0.1",
			// The reasons for these are in StartCluster's doc comment.
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
			"--repl-ping-replica-period", "1",
		}
		if err := n.start(); err != nil {
			errs = append(errs, err)
			continue
		}
		n.client = goredis.NewClient(&goredis.Options{
			Addr: n.Addr, DialTimeout: 500 * time.Millisecond,
			ReadTimeout: time.Second, WriteTimeout: time.Second,
			MaxRetries: -1, PoolSize: 2,
		})
		t.Cleanup(func() {
			n.stop()
			_ = n.client.Close()
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.ID, err = n.client.Do(ctx, "CLUSTER", "MYID").Text()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("CLUSTER MYID on %s: %w", n.Addr, err)
		}
		return n, nil
	}
	return nil, fmt.Errorf("cannot start redis-server: %w", errors.Join(errs...))
}

// freeClusterPort picks a port P such that both P and its cluster bus port
// P+10000 can be bound on 127.0.0.1. Both stay below 32768, where Linux
// starts handing out ephemeral ports (for outgoing connections, and for
// the :0 listeners of Start and NewProxy), so they are not taken by the time
// redis-server binds them.
func freeClusterPort() (int, error) {
	const lo, hi = 10000, 32768 - 10000
	for range 100 {
		port := lo + rand.IntN(hi-lo)
		a, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		_ = a.Close()
		if err != nil {
			continue
		}
		_ = b.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair in 100 tries")
}

// Seeds returns the address of every node, for goredis.ClusterOptions.Addrs.
func (c *Cluster) Seeds() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Masters returns the nodes that own slots, as a living node that says
// cluster_state:ok sees them, in the order of their first slot. It calls
// t.Fatal if no living node answers.
//
// This and the other methods that can fail take the t of the (sub)test
// calling them, since t.Fatal must run on that test's goroutine.
func (c *Cluster) Masters(t testing.TB) []*ClusterNode {
	t.Helper()
	m, err := c.slotMap(context.Background())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	var masters []*ClusterNode
	for _, r := range m {
		if n := c.node(r.master); !slices.Contains(masters, n) {
			masters = append(masters, n)
		}
	}
	return masters
}

// MasterOf returns the node that owns key's slot. It calls t.Fatal if no
// living node answers.
func (c *Cluster) MasterOf(t testing.TB, key string) *ClusterNode {
	t.Helper()
	ctx := context.Background()
	var slot int64
	var err error
	for _, n := range c.living() {
		if slot, err = n.client.ClusterKeySlot(ctx, key).Result(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: CLUSTER KEYSLOT %q: %v", key, err)
	}
	m, err := c.slotMap(ctx)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	for _, r := range m {
		if int(slot) >= r.start && int(slot) <= r.end {
			return c.node(r.master)
		}
	}
	t.Fatalf("redistest: slot %d of %q has no master", slot, key)
	return nil
}

// Kill kills n with SIGKILL, like a crash, and waits for it to exit. It
// first notes which slots n owns, as the first living node that answers
// sees it, for WaitFailover. It does nothing when n is not running.
func (c *Cluster) Kill(n *ClusterNode) {
	if !n.Running() {
		return
	}
	var owned [][2]int
	var replicas []string
	for _, ln := range c.living() {
		m, err := ln.clusterSlots(context.Background())
		if err != nil {
			continue
		}
		for _, r := range m {
			if r.master == n.Addr {
				owned = append(owned, [2]int{r.start, r.end})
				replicas = r.replicas
			}
		}
		break
	}
	n.mu.Lock()
	n.slots, n.replicas = owned, replicas
	n.mu.Unlock()
	n.stop()
}

// WaitFailover waits until a replica of the killed master dead has taken
// over its slots, as every living node sees it, and every living node says
// cluster_state:ok; it returns the new master. It calls t.Fatal if that
// takes longer than within, or if dead owned no slots when it was killed.
func (c *Cluster) WaitFailover(t testing.TB, dead *ClusterNode, within time.Duration) *ClusterNode {
	t.Helper()
	dead.mu.Lock()
	owned, replicas := dead.slots, dead.replicas
	dead.mu.Unlock()
	if len(owned) == 0 {
		t.Fatalf("redistest: WaitFailover: %s owned no slots when it was killed", dead.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var heir string
	err := c.waitReady(ctx, func(m slotMap) error {
		owner := m.owner(owned[0][0])
		if owner == "" || owner == dead.Addr {
			return fmt.Errorf("slot %d still owned by %s", owned[0][0], dead.Addr)
		}
		if !slices.Contains(replicas, owner) {
			return fmt.Errorf("slot %d taken by %s, which was not a replica of %s (%v)", owned[0][0], owner, dead.Addr, replicas)
		}
		for _, r := range owned {
			for _, s := range []int{r[0], r[1]} {
				if m.owner(s) != owner {
					return fmt.Errorf("slot %d owned by %s, not %s", s, m.owner(s), owner)
				}
			}
		}
		heir = owner
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: no failover of %s within %v: %v", dead.Addr, within, err)
	}
	return c.node(heir)
}

// Restart starts the killed node n again on the same port with the same
// data and nodes.conf, and waits until it has rejoined as a replica of the
// master that took its slots, with its replication link up, and every
// living node agrees on the slot map again. It calls t.Fatal if it cannot.
func (n *ClusterNode) Restart(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatalf("redistest: restart redis-server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	err := n.c.waitReady(ctx, func(m slotMap) error {
		for _, r := range m {
			if slices.Contains(r.replicas, n.Addr) {
				return nil
			}
		}
		return fmt.Errorf("%s is nobody's replica: %v", n.Addr, m)
	})
	if err != nil {
		t.Fatalf("redistest: %s did not rejoin as a replica within %v: %v\n%s", n.Addr, clusterReadyTimeout, err, n.Log())
	}
}

// Log returns the end of the node's output, for failure messages.
func (n *ClusterNode) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out == nil {
		return ""
	}
	return n.out.tail()
}

// Running reports whether n has been started and not killed since.
func (n *ClusterNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// start runs the redis-server and waits until it answers PING.
func (n *ClusterNode) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("redis-server on %s is already running", n.Addr)
	}
	s := &Server{Addr: n.Addr, path: n.path, args: n.args}
	if err := s.start(); err != nil {
		return err
	}
	n.cmd, n.exited, n.out = s.cmd, s.exited, s.out
	return nil
}

// stop kills the node (SIGKILL) and waits for it to exit; it does nothing
// when the node is not running.
func (n *ClusterNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// replicaUp reports why n is not yet a connected replica that says
// cluster_state:ok, or nil if it is.
func (n *ClusterNode) replicaUp(ctx context.Context) error {
	info, err := n.client.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up") {
		return fmt.Errorf("not a connected replica: %s", strings.Join(strings.Fields(info), " "))
	}
	ci, err := n.client.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(ci, "cluster_state:ok") {
		return errors.New("cluster_state is not ok")
	}
	return nil
}

// living returns the nodes that are running.
func (c *Cluster) living() []*ClusterNode {
	var ns []*ClusterNode
	for _, n := range c.Nodes {
		if n.Running() {
			ns = append(ns, n)
		}
	}
	return ns
}

// node returns the node listening on addr, or nil.
func (c *Cluster) node(addr string) *ClusterNode {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// slotRange is one line of CLUSTER SLOTS: a master and its replicas, sorted.
type slotRange struct {
	start, end int
	master     string
	replicas   []string
}

// slotMap is CLUSTER SLOTS as one node sees it, sorted by start.
type slotMap []slotRange

func (m slotMap) owner(slot int) string {
	for _, r := range m {
		if slot >= r.start && slot <= r.end {
			return r.master
		}
	}
	return ""
}

func (m slotMap) String() string {
	var b strings.Builder
	for _, r := range m {
		fmt.Fprintf(&b, "%d-%d %s %v; ", r.start, r.end, r.master, r.replicas)
	}
	return b.String()
}

// clusterSlots asks n for CLUSTER SLOTS. Replicas flagged as failed are
// left out by Redis; a failed master is still listed as its slots' owner.
func (n *ClusterNode) clusterSlots(ctx context.Context) (slotMap, error) {
	slots, err := n.client.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	m := make(slotMap, 0, len(slots))
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		r := slotRange{start: int(s.Start), end: int(s.End), master: s.Nodes[0].Addr}
		for _, rn := range s.Nodes[1:] {
			r.replicas = append(r.replicas, rn.Addr)
		}
		slices.Sort(r.replicas)
		m = append(m, r)
	}
	slices.SortFunc(m, func(a, b slotRange) int { return a.start - b.start })
	return m, nil
}

// slotMap returns the slot map of the first living node that says
// cluster_state:ok.
func (c *Cluster) slotMap(ctx context.Context) (slotMap, error) {
	var errs []error
	for _, n := range c.living() {
		ci, err := n.client.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(ci, "cluster_state:ok") {
			err = errors.New("cluster_state is not ok")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Addr, err))
			continue
		}
		m, err := n.clusterSlots(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: CLUSTER SLOTS: %w", n.Addr, err))
			continue
		}
		return m, nil
	}
	return nil, fmt.Errorf("no living node with cluster_state:ok: %w", errors.Join(errs...))
}

// waitReady polls every living node until all say cluster_state:ok and
// report the same slot map, which covers all 16384 slots with masters
// that are running, each with at least one replica when all nodes are
// running, and check (if not nil) accepts it; then it waits for every
// living replica's replication link to be up.
func (c *Cluster) waitReady(ctx context.Context, check func(slotMap) error) error {
	var err error
	for {
		if err = c.ready(ctx, check); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pollInterval):
		}
	}
}

func (c *Cluster) ready(ctx context.Context, check func(slotMap) error) error {
	living := c.living()
	var first slotMap
	for i, n := range living {
		ci, err := n.client.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr, err)
		}
		if !strings.Contains(ci, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state is not ok", n.Addr)
		}
		m, err := n.clusterSlots(ctx)
		if err != nil {
			return fmt.Errorf("%s: CLUSTER SLOTS: %w", n.Addr, err)
		}
		if i == 0 {
			first = m
			continue
		}
		if m.String() != first.String() {
			return fmt.Errorf("%s and %s disagree on the slot map: %v vs %v", living[0].Addr, n.Addr, first, m)
		}
	}
	if first == nil {
		return errors.New("no node is running")
	}
	next := 0
	for _, r := range first {
		if r.start != next {
			return fmt.Errorf("slots %d-%d have no master: %v", next, r.start-1, first)
		}
		next = r.end + 1
		if n := c.node(r.master); n == nil || !n.Running() {
			return fmt.Errorf("slots %d-%d are owned by %s, which is down", r.start, r.end, r.master)
		}
		if len(living) == len(c.Nodes) && len(r.replicas) == 0 {
			return fmt.Errorf("slots %d-%d have no replica: %v", r.start, r.end, first)
		}
		for _, addr := range r.replicas {
			if n := c.node(addr); n != nil && n.Running() {
				if err := n.replicaUp(ctx); err != nil {
					return fmt.Errorf("%s: %w", addr, err)
				}
			}
		}
	}
	if next != clusterSlots {
		return fmt.Errorf("slots %d-%d have no master: %v", next, clusterSlots-1, first)
	}
	if check != nil {
		return check(first)
	}
	return nil
}
