package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Timeouts of the browser steps. Every wait is bounded by one of them.
const (
	stepTimeout = 10 * time.Second        // one chromedp action: navigate, type, click
	liveTimeout = 5 * time.Second         // a message reaches another window
	pollEvery   = 25 * time.Millisecond   // how often a wait looks again
	quietPeriod = 1500 * time.Millisecond // how long "never shows up" is watched
)

// findBrowser returns the path of Chromium (or Chrome). Without one it fails
// the test in CI and skips it elsewhere.
func findBrowser(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("browser tests need Chromium: none of %s is on PATH (Debian: apt-get install chromium)", strings.Join(names, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser is one headless Chromium process, owned by one test.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// newBrowser starts a headless Chromium with a fresh profile and stops it
// in t.Cleanup. extra adds command-line options.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	path := findBrowser(t)
	var out lockedBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root, where the sandbox cannot start
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 768),
		chromedp.CombinedOutput(&out),
	)
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
		if t.Failed() {
			t.Logf("chromium output:\n%s", withoutNoise(out.String()))
		}
	})
	// The first Run starts the browser; its context must outlive the test
	// body, so it has no timeout of its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", path, err, withoutNoise(out.String()))
	}
	return &browser{t: t, ctx: ctx}
}

// withoutNoise drops the lines of Chromium's output about D-Bus, which a
// container does not have and which say nothing about a failure.
func withoutNoise(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "dbus") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// window is one browser tab in a browser context of its own (its own
// cookies and cache), as a separate person would have. It records every
// console error and warning, uncaught exception and CSP violation, and fails
// the test with them when the test ends.
type window struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu        sync.Mutex
	problems  []string
	redirects []string // "303 http://…/messages -> http://…/"
	allowed   []func(string) bool
}

// windowOption changes a window before its first page.
type windowOption func(*windowSettings)

type windowSettings struct {
	shared   bool
	noScript bool
	width    int64
	height   int64
}

// withoutJavaScript turns script execution off in the window, as a
// browser with JavaScript disabled.
func withoutJavaScript() windowOption { return func(s *windowSettings) { s.noScript = true } }

// sharedProfile opens the window as another tab of the browser's default
// profile, sharing its connections (and their per-site limits) with the
// other shared tabs, as tabs of one person's browser do.
func sharedProfile() windowOption { return func(s *windowSettings) { s.shared = true } }

// withViewport sets the window's viewport size in CSS pixels.
func withViewport(width, height int64) windowOption {
	return func(s *windowSettings) { s.width, s.height = width, height }
}

// newWindow opens a tab in a new browser context.
func (b *browser) newWindow(name string, opts ...windowOption) *window {
	t := b.t
	t.Helper()
	var set windowSettings
	for _, o := range opts {
		o(&set)
	}
	w := &window{t: t, name: name}
	copts := []chromedp.ContextOption{chromedp.WithListener(w.listen)}
	if !set.shared {
		copts = append(copts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(b.ctx, copts...)
	w.ctx = ctx
	t.Cleanup(func() {
		w.checkConsole()
		cancel()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	// Every window behaves as the focused one, as each would on its
	// own screen; focus and document.activeElement then work in all.
	w.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	})
	if set.noScript {
		w.call(func(ctx context.Context) error {
			_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		})
	}
	if set.width > 0 {
		w.do(chromedp.EmulateViewport(set.width, set.height))
	}
	return w
}

// listen runs on the tab's event goroutine: it only records.
func (w *window) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
			w.problem(fmt.Sprintf("console.%s: %s", ev.Type, argsText(ev.Args)))
		}
	case *runtime.EventExceptionThrown:
		w.problem("uncaught exception: " + exceptionText(ev.ExceptionDetails))
	case *log.EventEntryAdded:
		e := ev.Entry
		if e == nil {
			return
		}
		if e.Level == log.EntryLevelError || e.Level == log.EntryLevelWarning ||
			e.Source == "security" || strings.Contains(e.Text, "Content Security Policy") {
			w.problem(fmt.Sprintf("browser log (%s, %s): %s [%s]", e.Source, e.Level, e.Text, e.URL))
		}
	case *network.EventRequestWillBeSent:
		if r := ev.RedirectResponse; r != nil && ev.Request != nil {
			w.mu.Lock()
			w.redirects = append(w.redirects, fmt.Sprintf("%d %s -> %s", r.Status, r.URL, ev.Request.URL))
			w.mu.Unlock()
		}
	}
}

func (w *window) problem(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ok := range w.allowed {
		if ok(p) {
			return
		}
	}
	w.problems = append(w.problems, p)
}

// allow excuses the console entries for which ok is true: entries that are
// the documented, correct behaviour of the page.
func (w *window) allow(ok func(entry string) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.allowed = append(w.allowed, ok)
}

// checkConsole fails the test with every problem the window recorded.
func (w *window) checkConsole() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		w.t.Errorf("%s: %s", w.name, p)
	}
}

// takeProblems returns the problems recorded so far and forgets them.
func (w *window) takeProblems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.problems
	w.problems = nil
	return p
}

// redirectsSeen returns the redirects the window followed so far.
func (w *window) redirectsSeen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.redirects...)
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case len(a.Value) > 0:
			var s string
			if json.Unmarshal(a.Value, &s) == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(a.Value))
			}
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s at %s:%d:%d", s, d.URL, d.LineNumber+1, d.ColumnNumber+1)
}

// do runs actions in the window within stepTimeout and fails the test on
// an error.
func (w *window) do(actions ...chromedp.Action[chromedp.Void]) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		w.t.Fatalf("%s: %v", w.name, err)
	}
}

// call runs f with the window's context within stepTimeout.
func (w *window) call(f func(ctx context.Context) error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		w.t.Fatalf("%s: %v", w.name, err)
	}
}

// jsCall is the expression that calls the JavaScript function fn with args,
// each passed as a JSON literal (JSON is valid JavaScript).
func jsCall(fn string, args ...any) string {
	lits := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			panic(err)
		}
		lits[i] = string(b)
	}
	return "(" + fn + ")(" + strings.Join(lits, ", ") + ")"
}

// evalErr evaluates fn(args…) in the page and decodes the result into T.
func evalErr[T any](w *window, fn string, args ...any) (T, error) {
	ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](jsCall(fn, args...)))
}

// eval is evalErr that fails the test on an error.
func eval[T any](w *window, fn string, args ...any) T {
	w.t.Helper()
	v, err := evalErr[T](w, fn, args...)
	if err != nil {
		w.t.Fatalf("%s: evaluate %s: %v", w.name, fn, err)
	}
	return v
}

// waitFor waits until fn(args…) is true in the page, at most timeout; it
// fails the test with what and the log's content otherwise.
func (w *window) waitFor(timeout time.Duration, what, fn string, args ...any) {
	w.t.Helper()
	if err := w.poll(timeout, fn, args...); err != nil {
		w.t.Fatalf("%s: %s: %v; the log shows %q", w.name, what, err, w.logTextsNoFail())
	}
}

// poll evaluates fn(args…) until it is true or timeout has passed.
func (w *window) poll(timeout time.Duration, fn string, args ...any) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := evalErr[bool](w, fn, args...)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("not within %v (last error: %w)", timeout, err)
			}
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(pollEvery)
	}
}

// never watches fn(args…) for quietPeriod and fails the test as soon as it
// is true.
func (w *window) never(what, fn string, args ...any) {
	w.t.Helper()
	deadline := time.Now().Add(quietPeriod)
	for time.Now().Before(deadline) {
		if ok, err := evalErr[bool](w, fn, args...); err == nil && ok {
			w.t.Fatalf("%s: %s; the log shows %q", w.name, what, w.logTextsNoFail())
		}
		time.Sleep(pollEvery)
	}
}

// The page functions the tests use.
const (
	// jsStreamOpen: htmx has opened the log's SSE stream and is reading it.
	jsStreamOpen = `() => {
		const log = document.getElementById('log');
		const c = log && log._htmx && log._htmx.sse;
		return !!(c && c.status === 200 && c.reader);
	}`
	jsLogHas = `(text) => [...document.querySelectorAll('#log .msg .text')].some(e => e.textContent === text)`
	// jsLogTexts: the texts of the log's messages, in document order.
	jsLogTexts = `() => [...document.querySelectorAll('#log .msg .text')].map(e => e.textContent)`
	// jsMsgIDs: the ids of every message element in the document.
	jsMsgIDs = `() => [...document.querySelectorAll('[id^="msg-"]')].map(e => e.id)`
	// jsMarkForm marks the current form so its replacement can be told apart.
	jsMarkForm     = `() => { document.getElementById('send').e2eOld = true; return true }`
	jsFormReplaced = `() => { const f = document.getElementById('send'); return !!f && !f.e2eOld }`
)

// visit loads url in w and waits until its document is parsed, not for
// its load event: a room page without JavaScript frames the live log, a
// document that stays open, so such a page does not finish loading while
// it is shown (chromedp.Navigate would wait for that).
func (w *window) visit(url string) {
	w.t.Helper()
	w.visitUntil(url, "the page at "+url+" is parsed", `(url) => document.URL === url && document.readyState !== 'loading'`)
}

// visitLiveLog loads a room's live log itself in w: a document that is
// still being parsed while it is open, so it waits for its list.
func (w *window) visitLiveLog(url string) {
	w.t.Helper()
	w.visitUntil(url, "the live log at "+url+" shows its list", `(url) => document.URL === url && !!document.querySelector('ul.log')`)
}

// visitUntil navigates w to url and waits until ready(url) holds.
func (w *window) visitUntil(url, what, ready string) {
	w.t.Helper()
	w.call(func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, page.Navigate, page.NavigateParams{URL: url})
		if err == nil && res.ErrorText != "" {
			err = fmt.Errorf("navigate to %s: %s", url, res.ErrorText)
		}
		return err
	})
	w.waitFor(stepTimeout, what, ready, url)
}

// open loads a room page and waits until htmx streams its log.
func (w *window) open(url string) {
	w.t.Helper()
	w.do(chromedp.Navigate(url))
	if err := w.poll(liveTimeout, jsStreamOpen); err != nil {
		state, _ := evalErr[streamState](w, jsStreamState)
		hint := ""
		if state.FormProcessed && !state.LogProcessed {
			hint = " (htmx initialised the page before the hx-sse extension registered, so #log was never connected)"
		}
		desc, _ := json.Marshal(state)
		w.t.Fatalf("%s: the log's event stream opens: %v; state %s%s", w.name, err, desc, hint)
	}
}

// streamState is what jsStreamState reports.
type streamState struct {
	Visibility    string `json:"visibility"`
	HTMX          bool   `json:"htmx"`
	FormProcessed bool   `json:"formProcessed"`
	LogProcessed  bool   `json:"logProcessed"`
	Connection    *struct {
		Status      int    `json:"status"`
		Reading     bool   `json:"reading"`
		Attempt     int    `json:"attempt"`
		LastEventID string `json:"lastEventId"`
	} `json:"connection"`
}

// jsStreamState describes the page's htmx and the log's stream.
const jsStreamState = `() => {
	const log = document.getElementById('log');
	const form = document.getElementById('send');
	const c = log && log._htmx && log._htmx.sse;
	return {
		visibility: document.visibilityState, htmx: !!window.htmx,
		formProcessed: !!(form && form._htmx), logProcessed: !!(log && log._htmx),
		connection: c ? {status: c.status, reading: !!c.reader, attempt: c.attempt, lastEventId: c.lastEventId} : null,
	};
}`

// send types text into the message form, clicks Send and waits until htmx
// has replaced the form with the server's answer.
func (w *window) send(text string) {
	w.t.Helper()
	eval[bool](w, jsMarkForm)
	w.do(
		chromedp.SendKeys(chromedp.ID("message"), text),
		chromedp.Click(chromedp.CSS(`#send button[type="submit"]`)),
	)
	w.waitFor(liveTimeout, "the form is replaced after sending "+fmt.Sprintf("%q", text), jsFormReplaced)
}

// waitMessage waits until the log shows a message with exactly text.
func (w *window) waitMessage(text string) {
	w.t.Helper()
	w.waitFor(liveTimeout, fmt.Sprintf("message %q appears in the log", text), jsLogHas, text)
}

// logTexts returns the texts of the log's messages in order.
func (w *window) logTexts() []string {
	w.t.Helper()
	return eval[[]string](w, jsLogTexts)
}

func (w *window) logTextsNoFail() []string {
	v, _ := evalErr[[]string](w, jsLogTexts)
	return v
}
