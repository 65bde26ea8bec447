package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts Debian's Chromium headless with a fresh profile. The
// gateway's self-signed certificate is accepted: these tests are about the
// pages, and TLS trust has its own tests.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("GATEHOUSE_CHROMIUM")
	if path == "" {
		path, _ = exec.LookPath("chromium")
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; scripts/test.sh installs it")
		}
		t.Skip("chromium is not installed; run scripts/test.sh, which installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// screenshot saves the page under test-output/ for people to look at.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll("test-output", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("test-output", name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBrowserSignInReachesTheApp(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "browser-password-1")
	g := startGateway(t, writeE2EConfig(t, t.TempDir(), ""))
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/hello/world?greeting=hi"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
	); err != nil {
		t.Fatalf("open the app: %v", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasPrefix(loc, g.https+"/.gatehouse/login?rd=") {
		t.Fatalf("not sent to sign in: %q %v", loc, err)
	}
	screenshot(t, ctx, "signin-desktop")
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 740),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "signin-phone")
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "Admin"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "wrong password"),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role=alert]`)),
	); err != nil {
		t.Fatalf("wrong password: %v", err)
	}
	alert, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[role=alert]`)))
	if !strings.Contains(alert, "Incorrect username or password.") {
		t.Errorf("alert = %q", alert)
	}
	screenshot(t, ctx, "signin-failed")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "browser-password-1"),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	loc, _ = chromedp.Run(ctx, chromedp.Location())
	if loc != g.https+"/hello/world?greeting=hi" {
		t.Errorf("after sign-in at %q, want the page first asked for", loc)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`table`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Remote-User", "admin", "Remote-Groups", "X-Forwarded-For"} {
		if !strings.Contains(text, want) {
			t.Errorf("echo page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "__Host-gatehouse") {
		t.Error("the app received the gateway cookie")
	}
	screenshot(t, ctx, "echo-signed-in")

	// Sign out through the confirmation page.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/.gatehouse/logout"),
		chromedp.WaitVisible(chromedp.CSS(`form button`)),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "signout-confirm")
	if err := chromedp.Do(ctx,
		chromedp.Submit(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href*="/.gatehouse/login"]`)),
	); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/hello"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
	); err != nil {
		t.Fatalf("after sign-out the app is still open: %v", err)
	}
}
