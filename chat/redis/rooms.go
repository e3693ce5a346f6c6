package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
)

// The rooms index, with the default key prefix:
//
//	hxchat:rooms  sorted set: every room with keys; score: the room's last
//	              activity (Unix ms), as in its active key: the time of its
//	              newest message, or a little later (see appendScript)
//
// Every append updates it in the same script that stores the message. It
// holds every room, so the janitor (janitor.go) sees every room; it is
// bounded because the rooms are: the janitor removes a room's member with
// the room.

var (
	_ chat.RoomLister     = (*Store)(nil)
	_ chat.PresenceKeeper = (*Store)(nil)
)

func (s *Store) roomsKey() string { return s.opts.KeyPrefix + "rooms" }

// Rooms implements chat.RoomLister.
func (s *Store) Rooms(ctx context.Context, since time.Time, limit int) ([]chat.RoomInfo, error) {
	const what = "rooms"
	if err := s.check(ctx, what); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	zs, err := s.client.ZRevRangeByScoreWithScores(ctx, s.roomsKey(), &goredis.ZRangeBy{
		Max: "+inf", Min: strconv.FormatInt(since.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	out := make([]chat.RoomInfo, 0, len(zs))
	for _, z := range zs {
		name, _ := z.Member.(string)
		out = append(out, chat.RoomInfo{Name: name, LastActivity: time.UnixMilli(int64(z.Score)).UTC()})
	}
	chat.SortRooms(out)
	return out, nil
}
