package redis

import (
	"testing"

	"github.com/hxchat/hxchat/chat/redis/redistest"
	"github.com/hxchat/hxchat/chat/storetest"
)

// BenchmarkAppend measures stored (and published) posts per second into one
// room and the 99th percentile latency of an Append, with one poster and
// with eight concurrent ones, on a local redis-server without persistence.
func BenchmarkAppend(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	b.Run("Single", func(b *testing.B) {
		storetest.BenchAppend(b, open(b, srv.URL(), Options{KeyPrefix: freshPrefix()}), 1)
	})
	b.Run("8Posters", func(b *testing.B) {
		storetest.BenchAppend(b, open(b, srv.URL(), Options{KeyPrefix: freshPrefix()}), 8)
	})
}
