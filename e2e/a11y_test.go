package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// jsA11y checks the page's markup the way axe's rules html-has-lang, label,
// button-name and frame-title do, without a network: it returns the
// document's lang, each form control with its accessible name (from
// aria-labelledby, aria-label, a label, or a button's text), the frames
// without a title, and the aria-live value of #log.
const jsA11y = `() => {
	const text = (el) => (el ? el.textContent : '').replace(/\s+/g, ' ').trim();
	const name = (el) => {
		const by = el.getAttribute('aria-labelledby');
		if (by) return by.split(/\s+/).map(id => text(document.getElementById(id))).join(' ').trim();
		const aria = (el.getAttribute('aria-label') || '').trim();
		if (aria) return aria;
		if (el.id) {
			const l = document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
			if (l && text(l)) return text(l);
		}
		if (el.closest('label')) return text(el.closest('label'));
		if (el.tagName === 'BUTTON') return text(el);
		if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) return (el.value || '').trim();
		return '';
	};
	const log = document.getElementById('log');
	return {
		lang: document.documentElement.lang,
		controls: [...document.querySelectorAll('input:not([type=hidden]), button, select, textarea')]
			.map(el => ({control: el.outerHTML.slice(0, 100), name: name(el)})),
		untitledFrames: [...document.querySelectorAll('iframe')].filter(f => !(f.title || '').trim()).map(f => f.outerHTML),
		live: log ? log.getAttribute('aria-live') : null,
	};
}`

type a11yReport struct {
	Lang     string `json:"lang"`
	Controls []struct {
		Control string `json:"control"`
		Name    string `json:"name"`
	} `json:"controls"`
	UntitledFrames []string `json:"untitledFrames"`
	Live           *string  `json:"live"`
}

// Every page sets lang, every control has a label, frames have titles and
// the log is a polite live region; Chromium's own accessibility tree agrees
// that every control has a name.
func TestAccessibleMarkup(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, "-admin-token", "a11y-operator-token-1234")
	srv.post(t, "a11y", "hello")
	srv.post(t, "a11y", "https://example.com/a link")
	w := b.newWindow("JavaScript window")
	plain := b.newWindow("no-JavaScript window", withoutJavaScript())
	pages := []struct {
		name string
		w    *window
		url  string
		log  bool // the page has the live log
	}{
		{"index", w, srv.URL + "/", false},
		{"room", w, srv.roomURL("a11y"), true},
		{"room without JavaScript", plain, srv.roomURL("a11y"), true},
		{"log frame page", plain, srv.roomURL("a11y") + "log", false},
		{"earlier messages", w, srv.roomURL("a11y") + "?before=3", false},
		{"earlier messages without JavaScript", plain, srv.roomURL("a11y") + "?before=3", false},
		{"operators", w, srv.URL + "/admin", false},
	}
	for _, p := range pages {
		// visit, not Navigate: a page that frames the live log never
		// finishes loading, nor does the live log itself.
		if strings.HasSuffix(p.url, "/log") {
			p.w.visitLiveLog(p.url)
		} else {
			p.w.visit(p.url)
		}
		got := eval[a11yReport](p.w, jsA11y)
		if got.Lang == "" {
			t.Errorf("%s: <html> has no lang", p.name)
		}
		if !strings.HasPrefix(p.name, "log frame") && !strings.HasPrefix(p.name, "earlier") && len(got.Controls) == 0 {
			t.Errorf("%s: found no form controls to check", p.name)
		}
		for _, c := range got.Controls {
			if c.Name == "" {
				t.Errorf("%s: control without a label: %s", p.name, c.Control)
			}
		}
		for _, f := range got.UntitledFrames {
			t.Errorf("%s: frame without a title: %s", p.name, f)
		}
		if p.log && (got.Live == nil || *got.Live != "polite") {
			t.Errorf("%s: #log aria-live = %v, want \"polite\"", p.name, got.Live)
		}
		named, unnamed := axControls(t, p.w)
		t.Logf("%s: accessibility tree controls %q", p.name, named)
		for _, n := range unnamed {
			t.Errorf("%s: the accessibility tree has a %s without a name", p.name, n)
		}
	}
}

// axControls returns the interactive nodes of w's accessibility tree as
// "role: name", and the roles of those without an accessible name.
func axControls(t *testing.T, w *window) (named, unnamed []string) {
	t.Helper()
	var tree accessibility.GetFullAXTreeResult
	w.call(func(ctx context.Context) error {
		var err error
		tree, err = chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		return err
	})
	str := func(v *accessibility.Value) string {
		var s string
		if v != nil {
			_ = json.Unmarshal([]byte(v.Value), &s)
		}
		return s
	}
	interactive := []string{"textbox", "searchbox", "combobox", "button", "link", "checkbox", "radio", "Iframe"}
	for _, n := range tree.Nodes {
		role := str(n.Role)
		if n.Ignored || !slices.Contains(interactive, role) {
			continue
		}
		if name := strings.TrimSpace(str(n.Name)); name != "" {
			named = append(named, role+": "+name)
		} else {
			unnamed = append(unnamed, role)
		}
	}
	return named, unnamed
}

// focusStop is one element that Tab moved the focus to.
type focusStop struct {
	What    string  `json:"what"`
	Outline string  `json:"outline"`
	Width   float64 `json:"width"`
	Shadow  string  `json:"shadow"`
}

// The page functions of the keyboard test.
const (
	// jsDescribe names an element for the test's messages.
	jsDescribe = `(el) => el.id ? '#' + el.id : el.tagName.toLowerCase() + (el.className ? '.' + el.className.split(' ').join('.') : '') + '[' + el.textContent.trim().slice(0, 20) + ']'`
	// jsFocusables: every element a keyboard user must be able to reach.
	jsFocusables = `() => [...document.querySelectorAll('a[href], input:not([type=hidden]):not([disabled]), button:not([disabled]), select, textarea, iframe, [tabindex]:not([tabindex="-1"])')]
		.filter(el => el.getClientRects().length > 0).map(` + jsDescribe + `)`
	// jsFocused: the focused element and how its focus is shown.
	jsFocused = `() => {
		const el = document.activeElement;
		if (!el || el === document.body) return {what: 'body', outline: '', width: 0, shadow: ''};
		const s = getComputedStyle(el);
		return {what: (` + jsDescribe + `)(el), outline: s.outlineStyle, width: parseFloat(s.outlineWidth) || 0, shadow: s.boxShadow};
	}`
	// jsBoxes: where the page's parts are, to see that nothing moves.
	jsBoxes = `() => Object.fromEntries(['header', '.log-scroll', '#send'].map(sel => {
		const r = document.querySelector(sel).getBoundingClientRect();
		return [sel, [r.x, r.y, r.width, r.height].map(Math.round).join(',')];
	}))`
)

// tabThrough tabs from the top of w's page through every control and
// fails the test unless Tab reaches each one that is shown, with a
// visible focus indicator. It returns the Tab order.
func tabThrough(t *testing.T, w *window) []string {
	t.Helper()
	want := eval[[]string](w, jsFocusables)
	// Start where a fresh page starts: a click in the empty top left corner
	// leaves nothing focused and moves the focus navigation starting point
	// to the top of the page.
	w.do(chromedp.MouseClickXY(2, 2))
	var seen []string
	for range len(want) + 2 {
		w.do(chromedp.KeyEvent(kb.Tab))
		f := eval[focusStop](w, jsFocused)
		if f.What == "body" {
			continue
		}
		seen = append(seen, f.What)
		if (f.Outline == "none" || f.Width < 2) && (f.Shadow == "" || f.Shadow == "none") {
			t.Errorf("%s has no visible focus indicator (outline %s %.0fpx, box-shadow %s)", f.What, f.Outline, f.Width, f.Shadow)
		}
	}
	t.Logf("Tab order: %q", seen)
	for _, c := range want {
		if !slices.Contains(seen, c) {
			t.Errorf("Tab never reaches %s; it visits %q", c, seen)
		}
	}
	return seen
}

// The whole chat works with the keyboard alone: Tab reaches every control
// with a visible focus, Enter in the one-line input sends, and the form is
// ready for the next message. Messages sent with line breaks by another
// client show them, and arriving messages never move the page's parts.
func TestKeyboardOnly(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t)
	w := b.newWindow("keyboard window")
	w.open(srv.roomURL("keys"))
	before := eval[map[string]string](w, jsBoxes)

	tabThrough(t, w)

	// Tab on to the message input, type and press Enter.
	for i := 0; eval[focusStop](w, jsFocused).What != "#message"; i++ {
		if i > 20 {
			t.Fatalf("Tab does not reach #message")
		}
		w.do(chromedp.KeyEvent(kb.Tab))
	}
	eval[bool](w, jsMarkForm)
	w.do(chromedp.KeyEvent("typed with the keyboard"), chromedp.KeyEvent(kb.Enter))
	w.waitMessage("typed with the keyboard")
	w.waitFor(liveTimeout, "the form is replaced after Enter", jsFormReplaced)
	assertFormReady(t, w)

	// Another client's message with line breaks keeps them.
	const multi = "first line\nsecond line\nthird line"
	srv.post(t, "keys", multi)
	w.waitMessage(multi)
	type lines struct {
		Lines  int     `json:"lines"`
		Height float64 `json:"height"`
		Line   float64 `json:"line"`
	}
	got := eval[lines](w, `(text) => {
		const el = [...document.querySelectorAll('#log .msg .text')].find(e => e.textContent === text);
		const s = getComputedStyle(el);
		return {lines: el.innerText.split('\n').length, height: el.getBoundingClientRect().height, line: parseFloat(s.lineHeight)};
	}`, multi)
	if got.Lines != 3 || got.Height < 2.5*got.Line {
		t.Errorf("a three-line message renders as %d lines, %.0fpx high (line height %.0fpx), want three lines", got.Lines, got.Height, got.Line)
	}

	// The first message replaced the empty log's placeholder and more
	// followed: the header, the log box and the form have not moved.
	for i := range 5 {
		srv.post(t, "keys", fmt.Sprintf("filler %d", i))
	}
	w.waitMessage("filler 4")
	if after := eval[map[string]string](w, jsBoxes); !maps.Equal(before, after) {
		t.Errorf("the page's parts moved when messages arrived:\nbefore %v\nafter  %v", before, after)
	}
}

// The new controls work with the keyboard alone: Tab reaches the delete
// control of each of the viewer's messages and "Load earlier messages",
// with a visible focus, and Enter on them deletes and pages back.
func TestKeyboardDeleteAndLoadEarlier(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, "-history", "3")
	srv.post(t, "keys2", "someone else's")
	w := b.newWindow("keyboard window")
	room := srv.roomURL("keys2")
	w.open(room)
	for _, m := range []string{"mine 1", "mine 2", "mine 3"} {
		w.send(m)
		w.waitMessage(m)
	}
	w.open(room) // the page now starts with "Load earlier messages"
	seen := tabThrough(t, w)
	var deletes int
	for _, s := range seen {
		if strings.HasPrefix(s, "button[Delete") {
			deletes++
		}
	}
	if deletes != 3 || !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, "a[Load earlier") }) {
		t.Errorf("Tab order %q: want the 3 delete controls of the viewer's messages and Load earlier", seen)
	}

	// Tab to the delete control of "mine 2" and press Enter.
	id := eval[string](w, jsMsgIDOf, "mine 2")
	focusOn := func(what, sel string) {
		t.Helper()
		for i := 0; !eval[bool](w, `(sel) => document.activeElement === document.querySelector(sel)`, sel); i++ {
			if i > 30 {
				t.Fatalf("Tab does not reach %s", what)
			}
			w.do(chromedp.KeyEvent(kb.Tab))
		}
	}
	w.do(chromedp.MouseClickXY(2, 2))
	focusOn("the delete control of mine 2", "#"+id+" .delete button")
	w.do(chromedp.KeyEvent(kb.Enter))
	w.waitFor(liveTimeout, "Enter on the delete control deletes", jsIsPlaceholder, id)

	w.do(chromedp.MouseClickXY(2, 2))
	focusOn("Load earlier messages", "#earlier a")
	w.do(chromedp.KeyEvent(kb.Enter))
	w.waitMessage("someone else's")
}
