package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/hxchat/hxchat/handlers"
)

// serve listens on o.addr and serves handler until ctx is cancelled, then
// drains: /healthz turns 503, open streams are ended (their clients resume
// elsewhere), and after -drain-delay the listener closes and requests in
// flight get up to -drain-timeout to finish.
func serve(ctx context.Context, o options, logger *slog.Logger, handler http.Handler, streams *handlers.Streams, conns *connLimiter, draining *atomic.Bool, kind string, stdout io.Writer) error {
	tlsConfig, err := tlsConfigFor(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	if o.sendBuffer > 0 {
		ln = &sendBufferListener{Listener: ln, size: o.sendBuffer}
	}
	ln = conns.listen(ln) // outermost: a refused connection costs no setsockopt
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: min(10*time.Second, o.readTimeout),
		ReadTimeout:       o.readTimeout, // bodies are small; streams read nothing
		// Every response but a stream has a deadline of -write-timeout
		// from when it starts (handlers' writeDeadline); this one covers
		// what net/http answers by itself, and what a handler writes before
		// it re-arms. Streams set their own deadline at each write.
		WriteTimeout:   o.writeTimeout + o.readTimeout,
		IdleTimeout:    o.idleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       serverErrorLog(logger),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		TLSConfig:      tlsConfig,
		Protocols:      new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if tlsConfig != nil {
		// Browsers open at most 6 HTTP/1.1 connections per site, so a 7th
		// tab's stream would hang; over HTTP/2 all share one connection.
		srv.Protocols.SetHTTP2(true)
	}
	if o.h2c {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	// Open streams never hold a shutdown hostage: end them at once.
	srv.RegisterOnShutdown(streams.Shutdown)

	if o.pprofAddr != "" {
		stop, err := servePprof(o.pprofAddr, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}

	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "hxchat serving on %s://%s/\n", scheme, ln.Addr())
	logger.LogAttrs(ctx, slog.LevelInfo, "start", slog.String("addr", ln.Addr().String()), slog.String("scheme", scheme),
		slog.String("store", kind), slog.Bool("h2c", o.h2c),
		slog.Int("max_conns", conns.limits.total), slog.Int("max_conns_per_client", conns.limits.perClient))

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}

	// Drain. Health checks fail first so a load balancer stops sending new
	// clients; streams end now so their browsers resume on another node.
	logger.LogAttrs(context.Background(), slog.LevelInfo, "draining", slog.Duration("delay", o.drainDelay), slog.Duration("timeout", o.drainTimeout))
	draining.Store(true)
	streams.Shutdown()
	if o.drainDelay > 0 {
		time.Sleep(o.drainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// tlsConfigFor returns the TLS configuration the options ask for, or nil
// for plain HTTP.
func tlsConfigFor(o options) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case o.tlsCert != "":
		cert, err = tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("load -tls-cert/-tls-key: %w", err)
		}
	case o.tlsSelfSigned:
		cert, err = selfSigned()
		if err != nil {
			return nil, fmt.Errorf("generate a self-signed certificate: %w", err)
		}
	default:
		return nil, nil
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// selfSigned makes a certificate for localhost, 127.0.0.1 and ::1, valid
// for a year; browsers warn about it, which is the point of using it only
// locally.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hxchat (self-signed)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// servePprof serves the profiler on its own listener, which must be a
// loopback address: profiles expose internals and cost CPU.
func servePprof(addr string, logger *slog.Logger) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-pprof %q: must be a loopback address such as 127.0.0.1:6060", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.LogAttrs(context.Background(), slog.LevelError, "pprof", slog.Any("err", err))
		}
	}()
	logger.LogAttrs(context.Background(), slog.LevelInfo, "pprof", slog.String("addr", ln.Addr().String()))
	return func() { _ = srv.Close() }, nil
}
