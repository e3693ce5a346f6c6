package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hxchat/hxchat/internal/yardstick"
)

// serveYardstick serves a yardstick.Server on addr until ctx ends (SIGINT,
// SIGTERM), then ends its streams and shuts down. The first line printed is
// the URL served, for another run's -url.
func serveYardstick(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ys := yardstick.NewServer()
	srv := &http.Server{Handler: ys, ReadHeaderTimeout: 10 * time.Second}
	// Open streams end at once rather than hold the shutdown up.
	srv.RegisterOnShutdown(ys.Close)
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
