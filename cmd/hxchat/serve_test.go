package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTLSSelfSignedServesHTTP2(t *testing.T) {
	s := start(t, "-tls-self-signed")
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("url %s, want https", s.url)
	}
	resp, err := s.client().Get(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	// Streams work over HTTP/2, several on one connection.
	a := s.open(t, "tls", streamOpts{after: "0"})
	b := s.open(t, "tls", streamOpts{after: "0"})
	if a.resp.ProtoMajor != 2 {
		t.Fatalf("stream protocol %s, want HTTP/2", a.resp.Proto)
	}
	s.post(t, "tls", "over h2")
	for _, st := range []*stream{a, b} {
		if ev := st.next(t, 5*time.Second); ev.id != "1" || !strings.Contains(ev.data, "over h2") {
			t.Fatalf("got %+v", ev)
		}
	}
}

func TestTLSCertFiles(t *testing.T) {
	cert, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, "-tls-cert", certFile, "-tls-key", keyFile)
	// The served certificate is the one in the files.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.url, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if !st.PeerCertificates[0].Equal(mustParse(t, cert.Certificate[0])) {
		t.Fatal("served certificate differs from -tls-cert")
	}
	if st.NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN %q, want h2", st.NegotiatedProtocol)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestH2C(t *testing.T) {
	s := start(t, "-h2c")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Transport: tr}).Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2 without TLS", resp.Proto)
	}
	// Plain HTTP/1.1 still works beside it.
	resp, err = http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP/1.1 beside h2c: %s %d", resp.Proto, resp.StatusCode)
	}
}

// On shutdown: streams end at once, /healthz answers 503 while posts are
// still served during -drain-delay, then the process exits.
func TestDrain(t *testing.T) {
	s := start(t, "-drain-delay", "1500ms", "-drain-timeout", "5s")
	st := s.open(t, "drain", streamOpts{after: "0"})
	done := make(chan error, 1)
	go func() { done <- s.stop() }()
	select {
	case err := <-st.done:
		if err != io.EOF {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
	case <-time.After(time.Second):
		t.Fatal("stream still open after shutdown began")
	}
	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/healthz while draining: %d, want 503", resp.StatusCode)
	}
	s.post(t, "drain", "still accepted while draining")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("run did not return within drain delay + timeout")
	}
}

func TestPprofLoopbackOnly(t *testing.T) {
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-db", ":memory:", "-pprof", "0.0.0.0:0"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("run with a public -pprof address: %v, want a loopback error", err)
	}
	start(t, "-pprof", "127.0.0.1:0") // serves
}
