package redis

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// TestSecretSharedByNodes: every Store on one Redis and key prefix (every
// node of a deployment) gets the same secret, also when they all ask for
// the first time at once, and it is kept in the key "<prefix>secret".
func TestSecretSharedByNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	opts := testOptions()
	nodes := []*Store{open(t, srv.URL(), opts), open(t, srv.URL(), opts), open(t, srv.URL(), opts)}
	const each = 4
	got := make([][]byte, len(nodes)*each)
	errs := make([]error, len(got))
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = nodes[i%len(nodes)].Secret(t.Context()) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("Secret #%d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Errorf("Secret #%d (node %d) = %x, want %x like #0", i, i%len(nodes), got[i], got[0])
		}
	}
	if len(got[0]) != chat.SecretLen {
		t.Fatalf("Secret is %d bytes, want %d", len(got[0]), chat.SecretLen)
	}
	stored, err := rawClient(t, srv.URL()).Get(t.Context(), opts.KeyPrefix+"secret").Bytes()
	if err != nil || !bytes.Equal(stored, got[0]) {
		t.Errorf("key %ssecret = %x, %v; want %x", opts.KeyPrefix, stored, err, got[0])
	}

	// A node started later (a restart) reads the same secret.
	later, err := open(t, srv.URL(), opts).Secret(t.Context())
	if err != nil || !bytes.Equal(later, got[0]) {
		t.Errorf("Secret of a later node = %x, %v; want %x", later, err, got[0])
	}
	// Another deployment on the same Redis has a secret of its own.
	other, err := open(t, srv.URL(), testOptions()).Secret(t.Context())
	if err != nil {
		t.Fatalf("Secret with another prefix: %v", err)
	}
	if bytes.Equal(other, got[0]) {
		t.Errorf("two key prefixes share the secret %x", other)
	}
}

// TestSecretUnavailable: with Redis gone, Secret fails fast with
// chat.ErrUnavailable instead of making up a secret of its own.
func TestSecretUnavailable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv.URL(), testOptions())
	srv.Stop()
	got, err := s.Secret(t.Context())
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Secret with Redis stopped = (%x, %v), want an error wrapping chat.ErrUnavailable", got, err)
	}
}
