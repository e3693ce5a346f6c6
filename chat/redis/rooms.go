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
//	hxchat:rooms  sorted set: room names; score: the time of the room's
//	              newest message (Unix ms), kept to the newest roomsIndexed
//
// Every append updates it in the same script that stores the message.

// roomsIndexed bounds the rooms index.
const roomsIndexed = 10_000

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
