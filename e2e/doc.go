// Package e2e holds hxchat's browser end-to-end tests. They build the real
// binary, start it on 127.0.0.1:0 and drive Debian's Chromium through the
// DevTools protocol (chromedp): two or more windows per test, each in its own
// browser context, with every console error, uncaught exception and Content
// Security Policy violation counted as a failure.
//
// Run them with `make build && go test ./e2e/`. Without Chromium the tests
// skip, unless CI is set, where they fail. HXCHAT_SCREENSHOTS=dir also saves
// full-page PNGs of the main pages into dir.
package e2e
