package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// flushingWriter buffers log lines and writes them out at least every
// interval: one write system call per batch instead of one per request,
// which is most of what an access log costs under load. Close flushes.
type flushingWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newFlushingWriter(w io.Writer, interval time.Duration) *flushingWriter {
	f := &flushingWriter{buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f.flush()
			case <-f.stop:
				f.flush()
				return
			}
		}
	}()
	return f
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(p)
}

func (f *flushingWriter) flush() {
	f.mu.Lock()
	_ = f.buf.Flush()
	f.mu.Unlock()
}

// Close writes what is buffered and stops the flusher.
func (f *flushingWriter) Close() {
	close(f.stop)
	<-f.done
}
