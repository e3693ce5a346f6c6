package e2e

// Starting real proxies for the tests in proxy_test.go: nginx and haproxy
// with the reference configurations in docs/, squid as a forward proxy. Each
// runs in the foreground on a free 127.0.0.1 port, with its files under the
// test's temporary directory, and is stopped in t.Cleanup.

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// findProxy returns the path of a proxy's binary (Debian installs them in
// /usr/sbin, which is not on every user's PATH). Without it the test fails
// in CI and skips elsewhere.
func findProxy(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	missingProxy(t, fmt.Sprintf("proxy tests need %s: it is neither on PATH nor in /usr/sbin (Debian: apt-get install %s)", name, name))
	return ""
}

// missingProxy fails the test in CI and skips it elsewhere.
func missingProxy(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a process that cannot listen on port 0 and report its port
// (the proxies here; the crash and reset tests restart hxchat on one).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// docConfig reads docs/name and fills in its {{PLACEHOLDERS}}. It fails the
// test when the file lacks one of vars or keeps one vars does not fill, so
// the docs and the tests cannot drift apart unnoticed.
func docConfig(t testing.TB, name string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", name))
	if err != nil {
		t.Fatalf("read the reference config: %v", err)
	}
	s := string(b)
	for k, v := range vars {
		ph := "{{" + k + "}}"
		if !strings.Contains(s, ph) {
			t.Fatalf("docs/%s has no %s placeholder", name, ph)
		}
		s = strings.ReplaceAll(s, ph, v)
	}
	if i := strings.Index(s, "{{"); i >= 0 {
		end := min(len(s), i+40)
		t.Fatalf("docs/%s: placeholder not filled by the test: %q", name, s[i:end])
	}
	return s
}

// writeConf writes a file of the test or fails it.
func writeConf(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// proxyProc is one running proxy process.
type proxyProc struct {
	name   string
	out    lockedBuffer
	exited chan error
	logs   []string // files shown (their tails) when the test fails
}

// startProc starts a proxy in the foreground and stops it in t.Cleanup:
// SIGTERM, then SIGKILL after 10 s. Its output and log files are shown when
// the test fails.
func startProc(t testing.TB, name, bin string, args ...string) *proxyProc {
	t.Helper()
	p := &proxyProc{name: name, exited: make(chan error, 1)}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s did not stop within 10s of SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
			for _, f := range p.logs {
				b, _ := os.ReadFile(f)
				b = b[max(0, len(b)-8<<10):]
				t.Logf("%s %s:\n%s", name, filepath.Base(f), b)
			}
		}
	})
	return p
}

// waitHealthy polls hxchat's /healthz at base through client until it
// answers 200, for up to 10 s, failing early if the proxy exits.
func (p *proxyProc) waitHealthy(t testing.TB, client *http.Client, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case err := <-p.exited:
			p.exited <- err // for the cleanup
			t.Fatalf("%s exited while starting: %v\n%s", p.name, err, p.out.String())
		case <-ctx.Done():
			t.Fatalf("GET %s/healthz through %s: no 200 within 10s (last: %s)", base, p.name, last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// proxyClient is an HTTP client for a test through a proxy (forward, when
// forward is not nil). It follows no redirects and never decompresses by
// itself, so the tests see what the proxy sent.
func proxyClient(t testing.TB, forward *url.URL) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	if forward != nil {
		tr.Proxy = http.ProxyURL(forward)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// startNginx runs Debian's stock /etc/nginx/nginx.conf with site (given the
// address nginx listens on) in place of its sites-enabled, and returns
// nginx's base URL once hxchat answers through it.
func startNginx(t testing.TB, site func(listen string) string) string {
	t.Helper()
	bin := findProxy(t, "nginx")
	dir := t.TempDir()
	listen := freeAddr(t)
	sitePath := filepath.Join(dir, "hxchat.conf")
	writeConf(t, sitePath, site(listen))
	conf := filepath.Join(dir, "nginx.conf")
	writeConf(t, conf, debianNginxConf(t, dir, sitePath))
	errorLog := filepath.Join(dir, "error.log")
	// No master process: nginx then neither forks nor switches to the
	// "user" of the stock config, so it can use this test's files.
	p := startProc(t, "nginx", bin, "-p", dir, "-c", conf, "-e", errorLog, "-g", "daemon off; master_process off;")
	p.logs = []string{errorLog, sitePath}
	base := "http://" + listen
	p.waitHealthy(t, proxyClient(t, nil), base)
	return base
}

// stockNginxConf is the configuration Debian's nginx package installs.
const stockNginxConf = "/etc/nginx/nginx.conf"

// debianNginxConf is Debian's stock nginx.conf, with every default it sets
// (gzip on, proxy buffering and timeouts at nginx's defaults…) kept and only
// what ties it to the system moved under dir: the pid, the logs, the temp
// paths, and the conf.d and sites-enabled includes, replaced by site.
func debianNginxConf(t testing.TB, dir, site string) string {
	t.Helper()
	b, err := os.ReadFile(stockNginxConf)
	if err != nil {
		missingProxy(t, fmt.Sprintf("nginx tests run Debian's stock %s: %v (Debian: apt-get install nginx)", stockNginxConf, err))
	}
	var out []string
	included := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\n")
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		if len(f) == 0 {
			out = append(out, line)
			continue
		}
		switch {
		case f[0] == "user":
			line = "# " + line + " (no master process: nothing switches users)"
		case f[0] == "pid":
			line = "pid " + filepath.Join(dir, "nginx.pid") + ";"
		case f[0] == "error_log":
			line = "error_log " + filepath.Join(dir, "error.log") + ";"
		case f[0] == "access_log":
			line = "access_log " + filepath.Join(dir, "access.log") + ";"
		case f[0] == "include" && len(f) == 2 && (strings.HasPrefix(f[1], "/etc/nginx/conf.d/") || strings.HasPrefix(f[1], "/etc/nginx/sites-enabled/")):
			if included {
				line = "# " + line
				break
			}
			included = true
			var paths []string
			for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
				paths = append(paths, fmt.Sprintf("%s_temp_path %s;", p, filepath.Join(dir, p)))
			}
			line = "# " + line + "\n" + strings.Join(paths, "\n") + "\ninclude " + site + ";"
		}
		out = append(out, line)
	}
	if !included {
		missingProxy(t, fmt.Sprintf("%s is not Debian's stock nginx.conf: it includes neither conf.d nor sites-enabled", stockNginxConf))
	}
	return strings.Join(out, "\n") + "\n"
}

// startHAProxy runs docs/haproxy.cfg in front of upstream with idle
// timeouts of idle, and returns haproxy's base URL once hxchat answers
// through it.
func startHAProxy(t testing.TB, upstream string, idle time.Duration) string {
	t.Helper()
	bin := findProxy(t, "haproxy")
	listen := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	writeConf(t, cfg, docConfig(t, "haproxy.cfg", map[string]string{
		"LISTEN":   listen,
		"UPSTREAM": upstream,
		"TIMEOUT":  fmt.Sprintf("%dms", idle.Milliseconds()),
	}))
	// -db: stay in the foreground, whatever the config says.
	p := startProc(t, "haproxy", bin, "-f", cfg, "-db")
	p.logs = []string{cfg}
	base := "http://" + listen
	p.waitHealthy(t, proxyClient(t, nil), base)
	return base
}

// squidConf is a minimal squid.conf for a forward proxy on 127.0.0.1, with
// the idle timeouts that would end a quiet stream shortened to {{TIMEOUT}}.
const squidConf = `http_port {{LISTEN}}
visible_hostname localhost
http_access allow localhost
http_access deny all
cache deny all
pid_filename {{DIR}}/squid.pid
cache_log {{DIR}}/cache.log
access_log stdio:{{DIR}}/access.log
coredump_dir {{DIR}}
shutdown_lifetime 0 seconds
read_timeout {{TIMEOUT}}
write_timeout {{TIMEOUT}}
request_timeout {{TIMEOUT}}
client_idle_pconn_timeout {{TIMEOUT}}
server_idle_pconn_timeout {{TIMEOUT}}
`

// startSquid runs squid as a forward proxy with idle timeouts of idle and
// returns its URL (for http.Transport.Proxy) once hxchat at upstream
// answers through it.
func startSquid(t testing.TB, upstream string, idle time.Duration) *url.URL {
	t.Helper()
	bin := findProxy(t, "squid")
	// Started as root, squid works as its cache_effective_user (Debian:
	// proxy), which must write its logs: t.TempDir's parents are private,
	// so the directory is one of its own, open to all.
	dir, err := os.MkdirTemp("", "hxchat-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// The service name names squid's shared memory segments (/dev/shm):
	// one of its own, so no other squid's, nor a killed one's, is in the way.
	service := "hxchat" + strings.ToLower(rand.Text()[:8])
	t.Cleanup(func() {
		left, _ := filepath.Glob("/dev/shm/" + service + "-*")
		for _, f := range left {
			_ = os.Remove(f)
		}
	})
	listen := freeAddr(t)
	conf := strings.NewReplacer(
		"{{LISTEN}}", listen,
		"{{DIR}}", dir,
		"{{TIMEOUT}}", fmt.Sprintf("%d seconds", int(idle.Seconds())),
	).Replace(squidConf)
	path := filepath.Join(dir, "squid.conf")
	writeConf(t, path, conf)
	// -N: no daemon, no kids: the process started here serves.
	p := startProc(t, "squid", bin, "-N", "-n", service, "-f", path)
	p.logs = []string{filepath.Join(dir, "cache.log"), filepath.Join(dir, "access.log")}
	u := &url.URL{Scheme: "http", Host: listen}
	p.waitHealthy(t, proxyClient(t, u), "http://"+upstream)
	return u
}
