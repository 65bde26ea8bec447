// Command flood plays a password-guessing attack for the load script:
// workers post wrong sign-ins as fast as the gateway answers, each attempt
// from a new loopback source address (127.0.0.0/8) and a new username, so
// neither rate limit applies and only the hashing gate stands between the
// flood and the gateway's CPU. It prints how the attempts were answered.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var tokenRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func main() {
	target := flag.String("target", "http://127.0.0.1:19003", "gateway base URL")
	workers := flag.Int("workers", 32, "concurrent attackers")
	duration := flag.Duration("duration", 15*time.Second, "how long to attack")
	flag.Parse()

	var next atomic.Uint32
	var mu sync.Mutex
	counts := map[string]int{}
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				n := next.Add(1)
				src := net.IPv4(127, byte(1+n>>16%250), byte(n>>8), byte(n))
				status := attempt(*target, src, fmt.Sprintf("guess%d", n))
				mu.Lock()
				counts[status]++
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	total := 0
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, counts[k]))
		total += counts[k]
	}
	fmt.Printf("flood: %d wrong sign-ins from %d source addresses in %s (%s)\n", total, next.Load(), *duration, strings.Join(parts, ", "))
}

// attempt fetches the sign-in form and posts a wrong password from src.
func attempt(target string, src net.IP, user string) string {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(target + "/.gatehouse/login")
	if err != nil {
		return "error"
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := tokenRE.FindSubmatch(page)
	if m == nil {
		return "no-form"
	}
	form := url.Values{"username": {user}, "password": {"wrong-password"}, "csrf": {string(m[1])}}
	req, _ := http.NewRequest("POST", target+"/.gatehouse/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err = client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}
