package main

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// replaceFile writes a file the way editors and Kubernetes do: a new file,
// renamed over the old one.
func replaceFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".config.yaml.swp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func e2eConfigText(dir, rules string) string {
	return "listen: { https: \"127.0.0.1:0\", http: \"127.0.0.1:0\" }\ntls: { mode: self-signed }\ndata_dir: " +
		filepath.Join(dir, "data") + "\napps:\n  - host: localhost\n    upstream: echo\n    rules:\n" + rules
}

func TestConfigFileChangeReloads(t *testing.T) {
	dir := t.TempDir()
	cfg := writeE2EConfig(t, dir, "")
	g := startGateway(t, cfg)
	c := g.client()
	status := func() int {
		resp, _ := do(t, c, "GET", g.https+"/public/x", nil, "Accept", "application/json")
		return resp.StatusCode
	}
	if s := status(); s != 200 {
		t.Fatalf("before: %d", s)
	}
	replaceFile(t, cfg, e2eConfigText(dir, "      - { path: /public/**, deny: true }\n"))
	deadline := time.Now().Add(10 * time.Second)
	for status() != http.StatusForbidden {
		if time.Now().After(deadline) {
			t.Fatalf("the edited config was not picked up; logs:\n%s", g.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A broken edit is refused; the last good config keeps serving.
	replaceFile(t, cfg, e2eConfigText(dir, "      - { path: /public/**, allow: sometimes }\n"))
	deadline = time.Now().Add(10 * time.Second)
	for len(g.logs.logLines(t, "config reload refused; the previous config keeps serving")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the broken edit was not noticed; logs:\n%s", g.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := status(); s != http.StatusForbidden {
		t.Errorf("after a broken edit: %d, want the last good config's 403", s)
	}
}

// TestReloadUnderLoadDropsNothing swaps between two configs while clients
// keep requesting a path both allow: no request may fail or see a 403.
func TestReloadUnderLoadDropsNothing(t *testing.T) {
	dir := t.TempDir()
	a := e2eConfigText(dir, "      - { path: /public/**, allow: public }\n      - { path: /**, allow: authenticated }\n")
	b := e2eConfigText(dir, "      - { path: /admin/**, deny: true }\n      - { path: /public/**, allow: public }\n")
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(a), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	var ok, bad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := g.client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(g.https + "/public/item")
				if err != nil || resp.StatusCode != 200 {
					bad.Add(1)
				} else {
					ok.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		text := a
		if i%2 == 0 {
			text = b
		}
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		g.srv.reload()
		// Let requests run under this config before the next reload: at
		// least five more answers, however slow the machine is.
		want, deadline := ok.Load()+5, time.Now().Add(10*time.Second)
		for ok.Load() < want && bad.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 || ok.Load() < 100 {
		t.Errorf("%d requests failed, %d succeeded during 20 reloads", bad.Load(), ok.Load())
	}
}

func TestRestartNeededNamesTheSections(t *testing.T) {
	const apps = "apps:\n  - host: localhost\n    upstream: echo\n"
	file := filepath.Join(t.TempDir(), "config.yaml")
	load := func(text string) *Config {
		t.Helper()
		if err := os.WriteFile(file, []byte(text+apps), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(file)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := load("")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"nothing", "", nil},
		{"headers and proxies", "headers: {user: X-User}\ntrusted_proxies: [10.0.0.0/8]\n", nil},
		{"upstream timeout", "upstream_timeout: 5s\n", []string{"upstream_timeout"}},
		{"log", "log: {level: debug}\n", []string{"log"}},
		{"listen", "listen: {https: \":9443\"}\n", []string{"listen"}},
		{"session", "session: {idle_timeout: 2h, lifetime: 24h}\n", []string{"session"}},
		{"rate limit", "login: {rate_limit: {per_ip: 50-M}}\n", []string{"login"}},
		{"lockout", "login: {lockout: {attempts: 3}}\n", []string{"login"}},
		{"password length", "login: {password_min_length: 12}\n", []string{"login"}},
		{"registration", "login: {registration: true}\n", []string{"login"}},
		{"approval", "login: {registration: true, registration_approval: true}\n", []string{"login"}},
		{"default roles", "login: {default_roles: [reader]}\n", []string{"login"}},
		{"token ttl", "login: {token_ttl: 2h}\n", []string{"login"}},
		{"invite ttl", "login: {invite_ttl: 24h}\n", []string{"login"}},
		{"branding", "branding: {title: Acme}\n", []string{"branding"}},
		{"mail", "mail: {mode: file}\n", []string{"mail"}},
		{"metrics", "metrics: {listen: \"127.0.0.1:9464\"}\n", []string{"metrics"}},
		{"several", "login: {registration: true}\nmail: {mode: file}\nsession: {lifetime: 24h}\n", []string{"session", "login", "mail"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := load(tc.yaml)
			if got := restartNeeded(base, next); !slices.Equal(got, tc.want) {
				t.Errorf("restartNeeded = %q, want %q", got, tc.want)
			}
			if kept := withStatic(base, next); len(restartNeeded(base, kept)) != 0 {
				t.Errorf("withStatic kept changes that need a restart: %q", restartNeeded(base, kept))
			}
		})
	}
}

// TestReloadOfLoginSettingsAsksForARestart: the sign-in pages are built
// once, so a reload must say that login changes wait for a restart rather
// than log "config reloaded" as if they applied.
func TestReloadOfLoginSettingsAsksForARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := writeE2EConfig(t, dir, "")
	g := startGateway(t, cfg)
	writeE2EConfig(t, dir, "login:\n  password_min_length: 12\napps:\n  - host: localhost\n    upstream: echo\n"+e2eRules)
	g.srv.reload()
	warned := g.logs.logLines(t, "config reloaded; changes to login take effect after a restart")
	if len(warned) == 0 { // the file watcher may have reloaded too
		t.Fatalf("no restart warning for a login change:\n%s", g.logs)
	}
	if got := g.srv.cfg.Load().Session.PasswordMinLength; got != 8 {
		t.Errorf("running password minimum = %d after the reload, want the running 8 until a restart", got)
	}
}
