package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/proxy"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigErrors pins, for each broken config under testdata/config, the
// exact one-line-per-problem message an operator sees (file:line first).
func TestConfigErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test configs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := loadConfig(f)
			if err == nil {
				t.Fatal("loadConfig accepted a broken config")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("line %q does not start with the file name", line)
				}
			}
		})
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMinimalConfigGetsDefaults(t *testing.T) {
	f := writeConfig(t, "apps:\n  - host: localhost\n    upstream: echo\n    rules: [{path: /**, allow: authenticated}]\n")
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPSAddr != ":8443" || cfg.HTTPAddr != ":8080" || cfg.TLS.Mode != proxy.TLSSelfSigned {
		t.Errorf("listen/tls defaults: %q %q %q", cfg.HTTPSAddr, cfg.HTTPAddr, cfg.TLS.Mode)
	}
	if want := filepath.Join(filepath.Dir(f), "data"); cfg.DataDir != want {
		t.Errorf("data_dir = %q, want %q (relative to the config file)", cfg.DataDir, want)
	}
	if cfg.Session.IdleTimeout != time.Hour || cfg.Session.Lifetime != 12*time.Hour || cfg.Session.RememberMe != 720*time.Hour {
		t.Errorf("session defaults: %+v", cfg.Session)
	}
	if cfg.Proxy.Headers != proxy.DefaultHeaders {
		t.Errorf("headers = %+v", cfg.Proxy.Headers)
	}
}

func TestEnvironmentExpansionAndSecretFiles(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef0123456789abcdef-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GH_TEST_PORT", "9443")
	t.Setenv("GH_TEST_SECRET_FILE", secretFile)
	t.Setenv("GH_TEST_EMPTY", "")
	f := writeConfig(t, `listen:
  https: ":${GH_TEST_PORT}"
  http: "${GH_TEST_UNSET:-:9080}"
session:
  secret_file: ${GH_TEST_SECRET_FILE}
branding:
  title: "Literal $${NOT_EXPANDED}${GH_TEST_EMPTY}"
apps:
  - host: localhost
    upstream: echo
`)
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPSAddr != ":9443" || cfg.HTTPAddr != ":9080" {
		t.Errorf("listen = %q %q", cfg.HTTPSAddr, cfg.HTTPAddr)
	}
	if string(cfg.Secret) != "0123456789abcdef0123456789abcdef-from-file" {
		t.Errorf("secret from file = %q", cfg.Secret)
	}
	if cfg.Session.Brand.Title != "Literal ${NOT_EXPANDED}" {
		t.Errorf("title = %q", cfg.Session.Brand.Title)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := loadConfig("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Proxy.Apps) != 1 || cfg.Proxy.Apps[0].Upstream != proxy.EchoUpstream {
		t.Errorf("example apps = %+v, want the echo app", cfg.Proxy.Apps)
	}
}
