package main

import (
	"net/http"
	"os"
	"path/filepath"
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
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 || ok.Load() < 50 {
		t.Errorf("%d requests failed, %d succeeded during 20 reloads", bad.Load(), ok.Load())
	}
}
