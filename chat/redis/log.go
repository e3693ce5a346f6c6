package redis

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// SetDriverLogger sends the go-redis client's own log lines (failed dials,
// reconnects) to l at level Warn instead of the standard library logger.
// It affects every go-redis client in the process, so only main should call
// it.
func SetDriverLogger(l *slog.Logger) { goredis.SetLogger(driverLogger{l}) }

type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Printf(ctx context.Context, format string, v ...any) {
	d.l.LogAttrs(ctx, slog.LevelWarn, fmt.Sprintf(format, v...), slog.String("component", "go-redis"))
}
