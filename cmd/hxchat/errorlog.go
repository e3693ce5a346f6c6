package main

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// clientCaused are the beginnings of the lines net/http (server.go and
// its bundled HTTP/2 server) writes to ErrorLog about what a client did:
// a TCP connect-and-close on the TLS port, plain HTTP sent to it, a bad
// HTTP/2 preface or frame, a client's GOAWAY, a client that never sent
// its SETTINGS. Any client can cause them at will, and a load balancer's
// TCP health check causes one per check, so they are not the operator's
// concern: Debug, not Warn.
var clientCaused = []string{
	"http: TLS handshake error",
	"http2: server connection error",
	"http2: server: error reading preface",
	"http2: server closing client connection",
	"http2: received GOAWAY",
	"timeout waiting for SETTINGS frames",
	"timeout waiting for PING response",
}

// serverErrorLog returns the http.Server's ErrorLog: lines about what a
// client did go to logger at Debug, every other line (a panic in a
// handler, an Accept error, a misuse of the ResponseWriter) at Warn.
func serverErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{logger}, "", 0)
}

// errorLogWriter writes each line of a log.Logger (one Write per line) to
// a slog.Logger, at the level the line deserves.
type errorLogWriter struct{ logger *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	for _, prefix := range clientCaused {
		if strings.HasPrefix(msg, prefix) {
			level = slog.LevelDebug
			break
		}
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}
