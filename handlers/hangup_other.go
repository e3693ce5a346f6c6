//go:build !linux

package handlers

import "net"

// hangups is the hangup watcher of the platforms without epoll: it watches
// nothing, and taken-over streams read their connections themselves.
var hangups hangupWatcher

type hangupWatcher struct{}

func (hangupWatcher) watch(net.Conn, func()) (stop func(), ok bool) { return nil, false }
