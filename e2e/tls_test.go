package e2e

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// Over TLS the site speaks HTTP/2, so ten tabs of one browser all hold a
// stream of the same room on one connection and all receive a message.
// (Over HTTP/1.1 a browser allows 6 connections per site, and a 7th tab's
// stream waits for one of them: the reason TLS is recommended; see
// docs/proxies.md.)
func TestTenTabsOverHTTP2(t *testing.T) {
	b := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	srv := startServer(t, "-tls-self-signed")
	const tabs = 10
	var ws []*window
	for i := range tabs {
		w := b.newWindow(fmt.Sprintf("tab %d", i+1), sharedProfile())
		w.open(srv.roomURL("tabs"))
		ws = append(ws, w)
	}
	if proto := eval[string](ws[0], `() => performance.getEntriesByType('navigation')[0].nextHopProtocol`); proto != "h2" {
		t.Fatalf("page loaded over %q, want h2", proto)
	}
	ws[tabs-1].send("to every tab")
	for _, w := range ws {
		w.waitMessage("to every tab")
	}
}
