package main

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hxchat/hxchat/chat"
)

func TestSecretFlag(t *testing.T) {
	const secret = "correct horse battery staple"
	o, err := parseFlags(nil, func(k string) string { return map[string]string{"HXCHAT_SECRET": secret}[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.secret != secret {
		t.Errorf("secret %q, want it from HXCHAT_SECRET", o.secret)
	}
	got, err := serverSecret(t.Context(), o, nil)
	if want := sha256.Sum256([]byte(secret)); err != nil || string(got) != string(want[:]) {
		t.Errorf("serverSecret = %x, %v; want the SHA-256 of -secret, %x", got, err, want)
	}
	for _, short := range []string{"short", "fifteen chars!!", "열다섯글자열다섯글자열다섯글"} {
		_, err := parseFlags([]string{"-secret", short}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-secret") || !strings.Contains(err.Error(), "16") {
			t.Errorf("-secret %q: %v, want an error saying -secret needs 16 characters", short, err)
		}
	}
	if _, err := parseFlags([]string{"-secret", strings.Repeat("x", 16)}, func(string) string { return "" }, io.Discard); err != nil {
		t.Errorf("-secret of 16 characters: %v", err)
	}
}

// noSecretStore is a store that keeps no secret.
type noSecretStore struct{ chat.Store }

// brokenKeeper is a store whose secret cannot be read.
type brokenKeeper struct{ chat.Store }

func (brokenKeeper) Secret(context.Context) ([]byte, error) { return nil, chat.ErrUnavailable }

func TestSecretFromStore(t *testing.T) {
	mem := chat.NewMemoryStore(0)
	defer mem.Close()
	want, err := mem.Secret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := serverSecret(t.Context(), options{}, mem); err != nil || string(got) != string(want) {
		t.Errorf("serverSecret = %x, %v; want the store's %x", got, err, want)
	}
	if _, err := serverSecret(t.Context(), options{}, noSecretStore{mem}); err == nil || !strings.Contains(err.Error(), "-secret") {
		t.Errorf("store without a secret: %v, want an error pointing to -secret", err)
	}
	if _, err := serverSecret(t.Context(), options{}, brokenKeeper{mem}); err == nil || !strings.Contains(err.Error(), "-secret") {
		t.Errorf("store failing to give its secret: %v, want an error pointing to -secret", err)
	}
	// -secret wins, and the store is not asked.
	if got, err := serverSecret(t.Context(), options{secret: strings.Repeat("s", 20)}, brokenKeeper{mem}); err != nil || len(got) != sha256.Size {
		t.Errorf("-secret with a broken store: %x, %v", got, err)
	}
}

// nameAndVisit names a new visitor on s and returns their cookie header.
func nameAndVisit(t *testing.T, s *server, name string) string {
	t.Helper()
	c := &http.Client{Transport: s.transport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(s.url+"/name", url.Values{"name": {name}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("POST /name: status %d, cookies %v; want 303 and one cookie", resp.StatusCode, resp.Cookies())
	}
	ck := resp.Cookies()[0]
	return ck.Name + "=" + ck.Value
}

// visitAs GETs / on s with cookie and returns the page and whether the
// server set a new cookie (it did not trust the one sent).
func visitAs(t *testing.T, s *server, cookie string) (string, bool) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+"/", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := s.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), len(resp.Cookies()) > 0
}

func TestNamesSurviveRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hxchat.db")
	s := start(t, "-db", db)
	cookie := nameAndVisit(t, s, "Alice")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s = start(t, "-db", db)
	page, reset := visitAs(t, s, cookie)
	if reset || !strings.Contains(page, `You are <strong class="me">Alice</strong>`) {
		t.Errorf("after a restart on the same file: new cookie %v, page knows Alice: %v; want the name kept",
			reset, strings.Contains(page, "Alice"))
	}
	// Another file has another secret: the cookie means nothing there.
	other := start(t, "-db", filepath.Join(t.TempDir(), "other.db"))
	if page, reset := visitAs(t, other, cookie); !reset || strings.Contains(page, "Alice") {
		t.Errorf("another database trusted the cookie (new cookie %v)", reset)
	}
}

func TestSecretFlagSharedByNodes(t *testing.T) {
	const secret = "shared by every node of the deployment"
	a := start(t, "-secret", secret)
	b := start(t, "-secret", secret)
	cookie := nameAndVisit(t, a, "Bob")
	if page, reset := visitAs(t, b, cookie); reset || !strings.Contains(page, `You are <strong class="me">Bob</strong>`) {
		t.Errorf("node b did not take node a's cookie (new cookie %v)", reset)
	}
	c := start(t, "-secret", secret+" but different")
	if _, reset := visitAs(t, c, cookie); !reset {
		t.Errorf("a node with another -secret trusted the cookie")
	}
}

// -admin-token, like -secret, takes at least 16 characters, from the flag
// or HXCHAT_ADMIN_TOKEN; the error never repeats the token.
func TestAdminTokenLength(t *testing.T) {
	none := func(string) string { return "" }
	for _, short := range []string{"x", "fifteen-chars!!", "한국어한국어한국어한국어한국어"} {
		_, err := parseFlags([]string{"-admin-token", short}, none, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-admin-token") || !strings.Contains(err.Error(), "16") || strings.Contains(err.Error(), short) {
			t.Errorf("-admin-token %q: %v, want an error saying it needs 16 characters, without the token", short, err)
		}
	}
	o, err := parseFlags(nil, func(k string) string {
		if k == "HXCHAT_ADMIN_TOKEN" {
			return "from-the-environment"
		}
		return ""
	}, io.Discard)
	if err != nil || o.adminToken != "from-the-environment" {
		t.Errorf("HXCHAT_ADMIN_TOKEN: token %q, %v; want it taken", o.adminToken, err)
	}
	if o, err := parseFlags(nil, none, io.Discard); err != nil || o.adminToken != "" {
		t.Errorf("no token: %q, %v; want none (no operators)", o.adminToken, err)
	}
}
