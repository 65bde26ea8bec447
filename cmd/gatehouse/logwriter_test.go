package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowOut is a log destination that takes its time and records what it got.
type slowOut struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	delay  time.Duration
}

func (o *slowOut) Write(p []byte) (int, error) {
	time.Sleep(o.delay)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	return o.buf.Write(p)
}

func (o *slowOut) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Many request goroutines logging at once, more than the batch limit in
// all, into a slow destination: every line arrives whole, once, in each
// writer's order, and in far fewer writes than lines.
func TestFlushingWriterKeepsEveryLineWhole(t *testing.T) {
	out := &slowOut{delay: time.Millisecond}
	f := newFlushingWriter(out, 50*time.Millisecond)
	const writers, lines = 8, 3000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				// Lines of varied length, some long, to cross batch boundaries unevenly.
				fmt.Fprintf(f, "w%d i%d %s\n", w, i, strings.Repeat("x", (i*37)%400))
			}
		}()
	}
	wg.Wait()
	f.Close()

	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("got %d lines, want %d", len(got), writers*lines)
	}
	for _, line := range got {
		var w, i int
		parts := strings.SplitN(line, " ", 3)
		if len(parts) != 3 {
			t.Fatalf("torn line %q", line)
		}
		_, err1 := fmt.Sscanf(parts[0], "w%d", &w)
		_, err2 := fmt.Sscanf(parts[1], "i%d", &i)
		if pad := parts[2]; err1 != nil || err2 != nil || w < 0 || w >= writers || len(pad) != (i*37)%400 || strings.Trim(pad, "x") != "" {
			t.Fatalf("torn line %q", line)
		}
		if i != next[w] {
			t.Fatalf("writer %d: line %d arrived when %d was due", w, i, next[w])
		}
		next[w]++
	}
	if out.writes > writers*lines/10 {
		t.Errorf("%d writes for %d lines: not batched", out.writes, writers*lines)
	}
}

// A quiet gateway's line still reaches the log without waiting for more.
func TestFlushingWriterFlushesOnItsOwn(t *testing.T) {
	out := &slowOut{}
	f := newFlushingWriter(out, 20*time.Millisecond)
	defer f.Close()
	fmt.Fprintln(f, "one line")
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "one line\n" {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the log holds %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Lines logged during shutdown, after Close, are not lost.
func TestFlushingWriterAfterClose(t *testing.T) {
	out := &slowOut{}
	f := newFlushingWriter(out, time.Hour)
	fmt.Fprintln(f, "before")
	f.Close()
	fmt.Fprintln(f, "after")
	if got := out.String(); got != "before\nafter\n" {
		t.Errorf("got %q", got)
	}
}
