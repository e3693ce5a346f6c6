//go:build linux

package handlers

import (
	"net"
	"testing"
	"time"
)

// acceptPair returns both ends of a fresh loopback TCP connection.
func acceptPair(t *testing.T, ln net.Listener) (server, client net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

func TestHangupWatcher(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wait := func(c <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(streamWait):
			t.Fatalf("no hangup %s", what)
		}
	}

	t.Run("ClientCloses", func(t *testing.T) {
		server, client := acceptPair(t, ln)
		gone := make(chan struct{})
		stop, ok := hangups.watch(server, func() { close(gone) })
		if !ok {
			t.Fatal("cannot watch a TCP connection")
		}
		defer stop()
		select {
		case <-gone:
			t.Fatal("hangup while the client is still there")
		case <-time.After(50 * time.Millisecond):
		}
		client.Close()
		wait(gone, "after the client closed")
	})
	t.Run("ClientSends", func(t *testing.T) {
		server, client := acceptPair(t, ln)
		gone := make(chan struct{})
		stop, ok := hangups.watch(server, func() { close(gone) })
		if !ok {
			t.Fatal("cannot watch a TCP connection")
		}
		defer stop()
		if _, err := client.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		wait(gone, "after the client sent input")
	})
	// A stopped watch never fires, even when its socket's number is reused
	// by the next connection, whose own watch fires for it alone.
	t.Run("StoppedAndReused", func(t *testing.T) {
		first, firstClient := acceptPair(t, ln)
		fired := make(chan struct{}, 1)
		stop, ok := hangups.watch(first, func() { fired <- struct{}{} })
		if !ok {
			t.Fatal("cannot watch a TCP connection")
		}
		stop()
		first.Close()
		firstClient.Close()
		second, secondClient := acceptPair(t, ln)
		gone := make(chan struct{})
		stop2, ok := hangups.watch(second, func() { close(gone) })
		if !ok {
			t.Fatal("cannot watch a TCP connection")
		}
		defer stop2()
		secondClient.Close()
		wait(gone, "for the second connection")
		select {
		case <-fired:
			t.Error("a stopped watch fired")
		default:
		}
	})
}
