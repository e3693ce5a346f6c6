package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The console watcher that every test relies on does catch what it is
// meant to: a CSP violation (and the policy is enforced: inline script and
// inline style are refused), a console.error and an uncaught exception.
func TestConsoleWatcherCatchesProblems(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t)
	w := b.newWindow("window")
	w.open(srv.roomURL("watched"))

	eval[bool](w, `() => {
		const s = document.createElement('script');
		s.textContent = 'window.e2eInlineRan = true';
		document.head.appendChild(s);
		document.querySelector('h1').setAttribute('style', 'color: red');
		console.error('e2e: a console error');
		setTimeout(() => { throw new Error('e2e: an uncaught error') });
		return true;
	}`)
	if ran := eval[bool](w, `() => window.e2eInlineRan === true`); ran {
		t.Error("an inline script ran: the Content-Security-Policy does not forbid it")
	}
	if color := eval[string](w, `() => getComputedStyle(document.querySelector('h1')).color`); color == "rgb(255, 0, 0)" {
		t.Error("an inline style applied: the Content-Security-Policy does not forbid it")
	}

	want := []string{"Content Security Policy", "e2e: a console error", "e2e: an uncaught error"}
	var got []string
	deadline := time.Now().Add(liveTimeout)
	for {
		got = append(got, w.takeProblems()...)
		missing := slices.DeleteFunc(slices.Clone(want), func(s string) bool {
			return slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, s) })
		})
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher missed %q; it recorded %q", missing, got)
		}
		time.Sleep(pollEvery)
	}
	t.Logf("recorded, as expected: %q", got)
	var csp int
	for _, p := range got {
		if strings.Contains(p, "Content Security Policy") {
			csp++
		}
	}
	if csp < 2 {
		t.Errorf("want a CSP report for the inline script and one for the inline style; recorded %q", got)
	}
	w.takeProblems() // they were provoked on purpose
}
