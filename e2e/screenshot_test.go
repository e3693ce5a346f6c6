package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestScreenshots saves full-page PNGs of the main pages into the folder
// named by HXCHAT_SCREENSHOTS, for a person to look at; it skips without it.
// The PNGs are not to be committed.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("HXCHAT_SCREENSHOTS")
	if dir == "" {
		t.Skip("set HXCHAT_SCREENSHOTS=dir to save screenshots of the pages")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	srv := startServer(t, "-admin-token", "screenshot-admin-token", "-history", "6")
	const room = "lobby"
	for _, m := range []string{
		"Welcome to the lobby!",
		"안녕하세요! 한국어 메시지도 잘 보이나요?",
		"A message\nthat spans\nthree lines",
		"A long word: " + strings.Repeat("abcdefghij", 14),
	} {
		srv.post(t, room, m)
	}
	refused := func(p string) bool { return strings.Contains(p, "status of 400") }

	w := b.newWindow("desktop")
	w.allow(refused)
	w.do(chromedp.Navigate(srv.URL + "/"))
	shoot(t, w, dir, "index.png")
	w.do(chromedp.Navigate(srv.URL + "/chat/?room=a%20b"))
	shoot(t, w, dir, "index-error.png")

	w.open(srv.roomURL(room))
	w.send("보내기: typed in the browser")
	w.waitMessage("보내기: typed in the browser")
	shoot(t, w, dir, "room.png")
	w.send("   ")
	w.waitFor(liveTimeout, "the reason is shown", `() => !!document.getElementById('message-error')`)
	shoot(t, w, dir, "room-error.png")
	w.send("A link: https://example.com/docs/getting-started, and a deleted message above")
	w.waitMessage("A link: https://example.com/docs/getting-started, and a deleted message above")
	w.deleteOwn("보내기: typed in the browser")
	w.waitFor(liveTimeout, "the placeholder", `() => !!document.querySelector('#log .msg.deleted')`)
	shoot(t, w, dir, "room-own-messages.png")
	w.do(chromedp.Navigate(srv.roomURL(room) + "?before=3"))
	shoot(t, w, dir, "room-earlier.png")
	w.do(chromedp.Navigate(srv.URL + "/admin"))
	shoot(t, w, dir, "admin.png")

	plain := b.newWindow("no JavaScript", withoutJavaScript())
	plain.visit(srv.roomURL(room))
	srv.post(t, room, "Posted while the frame without JavaScript was open")
	plain.waitFor(liveTimeout, "the live frame shows the new message", jsFrameHas, "Posted while the frame without JavaScript was open")
	shoot(t, plain, dir, "room-nojs-live.png")

	phone := b.newWindow("phone", withViewport(390, 844))
	phone.open(srv.roomURL(room))
	shoot(t, phone, dir, "room-phone.png")

	dark := b.newWindow("dark")
	dark.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	})
	dark.open(srv.roomURL(room))
	shoot(t, dark, dir, "room-dark.png")
}

// shoot saves a full-page PNG of w's page as dir/name.
func shoot(t *testing.T, w *window, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("%s: screenshot %s: %v", w.name, name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", filepath.Join(dir, name))
}

// mixedMessages are 30 messages of mixed lengths and scripts: short and
// long lines, one of the 2000 characters allowed, a long URL, Korean, and
// line breaks.
func mixedMessages() []string {
	long := strings.Repeat("The quick brown fox jumps over the lazy dog, then naps in the sun. ", 40)
	long = long[:2000]
	msgs := []string{
		"Welcome to the lobby!",
		"hi",
		"안녕하세요! 한국어 메시지도 잘 보이나요?",
		"Has anyone tried the new build? It starts in under a second here.",
		"ok",
		"https://example.com/a/very/long/path/that/never/stops/" + strings.Repeat("segment-without-spaces-", 12) + "?query=" + strings.Repeat("x", 60),
		"A message\nthat spans\nthree lines",
		long,
		"네, 방금 확인했어요. 아주 빠르네요 👍",
		"A long word: " + strings.Repeat("abcdefghij", 14),
	}
	for i := len(msgs); i < 30; i++ {
		switch i % 4 {
		case 0:
			msgs = append(msgs, fmt.Sprintf("message %d", i+1))
		case 1:
			msgs = append(msgs, fmt.Sprintf("Message %d is a sentence of a more usual length, the kind people write most of the time.", i+1))
		case 2:
			msgs = append(msgs, fmt.Sprintf("%d번째 메시지: 오늘 회의는 세 시에 시작합니다.", i+1))
		default:
			msgs = append(msgs, fmt.Sprintf("line one of %d\nline two", i+1))
		}
	}
	return msgs
}

// jsOverflow reports how far the page is wider than the viewport (0 when
// nothing overflows horizontally).
const jsOverflow = `() => Math.max(0, document.documentElement.scrollWidth - window.innerWidth)`

// The index and a room with 30 mixed messages fit a phone (390×844) and a
// desktop (1280×800) in both colour schemes, with JavaScript and without:
// nothing makes the page scroll sideways. With HXCHAT_SCREENSHOTS=dir it
// also saves each as dir/layout-PAGE-WIDTH-SCHEME.png.
func TestLayoutFits(t *testing.T) {
	dir := os.Getenv("HXCHAT_SCREENSHOTS")
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t)
	srv := startServer(t)
	const room = "lobby"
	for _, m := range mixedMessages() {
		srv.post(t, room, m)
	}
	check := func(w *window, name string) {
		t.Helper()
		if over := eval[float64](w, jsOverflow); over > 0 {
			t.Errorf("%s: the page is %.0fpx wider than the viewport", name, over)
		}
		if dir != "" {
			shoot(t, w, dir, name+".png")
		}
	}
	for _, size := range []struct{ w, h int64 }{{390, 844}, {1280, 800}} {
		for _, scheme := range []string{"light", "dark"} {
			suffix := fmt.Sprintf("%d-%s", size.w, scheme)
			w := b.newWindow(suffix, withViewport(size.w, size.h))
			emulateScheme(w, scheme)
			w.do(chromedp.Navigate(srv.URL + "/"))
			check(w, "layout-index-"+suffix)
			w.open(srv.roomURL(room))
			if dir != "" {
				// Show some messages as the reader's own, as /me.css does.
				eval[bool](w, jsMarkOwn, []string{"msg-3", "msg-6", "msg-28", "msg-30"})
			}
			check(w, "layout-room-"+suffix)
			if dir != "" {
				// The long URL and the 2000 characters, for a person to see.
				eval[bool](w, `() => { document.getElementById('msg-6').scrollIntoView({block: 'start'}); return true }`)
				check(w, "layout-room-long-"+suffix)
			}

			nojs := b.newWindow("no JavaScript "+suffix, withViewport(size.w, size.h), withoutJavaScript())
			emulateScheme(nojs, scheme)
			nojs.visit(srv.roomURL(room))
			nojs.waitFor(stepTimeout, "the log frame shows the messages", `() => {
				const f = document.querySelector('iframe.log-frame');
				return !!(f && f.contentDocument && f.contentDocument.querySelectorAll('.msg').length === 30);
			}`)
			check(nojs, "layout-room-nojs-"+suffix)
		}
	}
}

// jsMarkOwn styles the messages with the given ids as the reader's own, the
// way the per-person /me.css does (see "own messages" in app.css), through
// the CSSOM, which the CSP allows.
const jsMarkOwn = `(ids) => {
	for (const id of ids) {
		const s = document.getElementById(id).style;
		s.setProperty('--own-edge', 'var(--accent)');
		s.setProperty('--own-bg', 'var(--mine)');
		s.setProperty('--own-label', '" (you)"');
	}
	return true;
}`

// emulateScheme makes w's pages see prefers-color-scheme: scheme.
func emulateScheme(w *window, scheme string) {
	w.t.Helper()
	w.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}
