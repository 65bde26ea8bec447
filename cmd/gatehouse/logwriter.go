package main

import (
	"io"
	"sync"
	"time"
)

// flushingWriter collects log lines in memory and writes them out in
// batches, at least every interval: one write system call per batch
// instead of one per request, and never one inside a request. Each Write
// stays contiguous, so concurrent lines never interleave, and lines keep
// their order. Close writes what is left.
type flushingWriter struct {
	out io.Writer

	mu      sync.Mutex // guards pending and closed
	pending []byte
	closed  bool

	wmu   sync.Mutex // serializes writes to out, and guards spare
	spare []byte

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Batch sizes. Past kickBytes the flusher is woken early; past
// blockBytes (the output is slower than the lines coming in) a Write
// flushes itself, so memory stays bounded and no line is dropped.
const (
	kickBytes  = 64 << 10
	blockBytes = 4 << 20
)

func newFlushingWriter(w io.Writer, interval time.Duration) *flushingWriter {
	f := &flushingWriter{out: w, pending: make([]byte, 0, kickBytes), spare: make([]byte, 0, kickBytes),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-f.kick:
			case <-f.stop:
				f.flush()
				return
			}
			f.flush()
		}
	}()
	return f
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.closed { // a line after Close (shutdown) goes straight out
		f.mu.Unlock()
		f.wmu.Lock()
		defer f.wmu.Unlock()
		return f.out.Write(p)
	}
	f.pending = append(f.pending, p...)
	n := len(f.pending)
	f.mu.Unlock()
	switch {
	case n >= blockBytes:
		f.flush()
	case n >= kickBytes:
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// flush swaps the pending batch for an empty one and writes it out, so
// writers wait only for the swap, never for the output.
func (f *flushingWriter) flush() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	batch := f.pending
	f.pending = f.spare[:0]
	f.mu.Unlock()
	if len(batch) > 0 {
		_, _ = f.out.Write(batch)
	}
	if cap(batch) > blockBytes { // a burst grew it: let that memory go
		batch = make([]byte, 0, kickBytes)
	}
	f.spare = batch[:0]
}

// Close writes what is buffered and stops the flusher; later lines are
// written at once.
func (f *flushingWriter) Close() {
	close(f.stop)
	<-f.done
	f.wmu.Lock()
	f.mu.Lock()
	f.closed = true
	rest := f.pending
	f.pending = nil
	f.mu.Unlock()
	if len(rest) > 0 { // written between the last flush and closed
		_, _ = f.out.Write(rest)
	}
	f.wmu.Unlock()
}
