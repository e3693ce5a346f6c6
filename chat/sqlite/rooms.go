package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/hxchat/hxchat/chat"
)

var _ chat.RoomLister = (*Store)(nil)

// Rooms implements chat.RoomLister from the rooms table, whose last_time_us
// every append moves (an index range scan). It never waits for the writer.
func (s *Store) Rooms(ctx context.Context, since time.Time, limit int) ([]chat.RoomInfo, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT name, last_time_us FROM rooms
		WHERE last_time_us >= ?1
		ORDER BY last_time_us DESC, name LIMIT ?2`, since.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", s.readErr(ctx, err))
	}
	defer rows.Close()
	var out []chat.RoomInfo
	for rows.Next() {
		var r chat.RoomInfo
		var us int64
		if err := rows.Scan(&r.Name, &us); err != nil {
			return nil, fmt.Errorf("rooms: %w", err)
		}
		r.LastActivity = time.UnixMicro(us).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rooms: %w", s.readErr(ctx, err))
	}
	return out, nil
}
