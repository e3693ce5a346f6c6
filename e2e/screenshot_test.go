package e2e

import (
	"context"
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
	srv := startServer(t)
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
