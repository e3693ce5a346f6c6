package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis"
	"github.com/hxchat/hxchat/chat/sqlite"
)

// openStore opens the store the options select: a Redis Cluster when
// -redis-cluster is set, one Redis when -redis is (history and fan-out
// shared by every node), else the SQLite file -db, or memory for
// -db :memory:. It returns a short name of the kind for logs.
func openStore(ctx context.Context, o options, logger *slog.Logger) (chat.Store, string, error) {
	ropts := redis.Options{
		Retention:    o.retention,
		DialTimeout:  o.redisTimeout,
		ReadTimeout:  o.redisTimeout,
		WriteTimeout: o.redisTimeout,

		PresenceHeartbeat: o.heartbeat,
		MaxRooms:          o.maxRooms,
		MaxAge:            o.maxAge,
	}
	switch {
	case len(o.redisCluster) > 0:
		redis.SetDriverLogger(logger)
		s, err := redis.OpenCluster(ctx, o.redisCluster, ropts)
		if err != nil {
			return nil, "", fmt.Errorf("open redis cluster store: %w", err)
		}
		return s, "redis-cluster", nil
	case o.redisURL != "":
		redis.SetDriverLogger(logger)
		s, err := redis.Open(ctx, o.redisURL, ropts)
		if err != nil {
			return nil, "", fmt.Errorf("open redis store: %w", err)
		}
		return s, "redis", nil
	case o.db == ":memory:":
		return chat.NewMemoryStore(o.retention, chat.WithMaxRooms(o.maxRooms), chat.WithMaxAge(o.maxAge)), "memory", nil
	default:
		s, err := sqlite.Open(ctx, o.db, sqlite.Options{
			Retention:   o.retention,
			BusyTimeout: o.dbBusyTimeout,
			MaxBatch:    o.dbMaxBatch,
			MaxReaders:  o.dbReaders,
			MaxRooms:    o.maxRooms,
			MaxAge:      o.maxAge,
			Logger:      logger,
		})
		if err != nil {
			return nil, "", fmt.Errorf("open sqlite store %s: %w", o.db, err)
		}
		return s, "sqlite", nil
	}
}

// registerStoreMetrics exports what the store removed in the background to
// stay within -max-rooms and -max-age, for the stores that count it (the
// memory store removes rooms at append and ages messages out at read).
func registerStoreMetrics(reg prometheus.Registerer, store chat.Store) {
	var stats func() (evicted, expired int64)
	switch s := store.(type) {
	case *sqlite.Store:
		stats = func() (int64, int64) { st := s.Stats(); return st.RoomsEvicted, st.Expired }
	case *redis.Store:
		stats = func() (int64, int64) { st := s.Stats(); return st.RoomsEvicted, st.Expired }
	default:
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hxchat_rooms_evicted_total", Help: "Rooms whose history this node removed to stay within -max-rooms."},
			func() float64 { n, _ := stats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hxchat_messages_expired_total", Help: "Messages this node removed for being older than -max-age."},
			func() float64 { _, n := stats(); return float64(n) }),
	)
}
