package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis"
	"github.com/hxchat/hxchat/chat/sqlite"
)

// openStore opens the store the options select: Redis when -redis is set
// (history and fan-out shared by every node), else the SQLite file -db, or
// memory for -db :memory:. It returns a short name of the kind for logs.
func openStore(ctx context.Context, o options, logger *slog.Logger) (chat.Store, string, error) {
	switch {
	case o.redisURL != "":
		redis.SetDriverLogger(logger)
		s, err := redis.Open(ctx, o.redisURL, redis.Options{
			Retention:    o.retention,
			DialTimeout:  o.redisTimeout,
			ReadTimeout:  o.redisTimeout,
			WriteTimeout: o.redisTimeout,

			PresenceHeartbeat: o.heartbeat,
		})
		if err != nil {
			return nil, "", fmt.Errorf("open redis store: %w", err)
		}
		return s, "redis", nil
	case o.db == ":memory:":
		return chat.NewMemoryStore(o.retention, chat.WithMaxRooms(o.maxRooms)), "memory", nil
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
