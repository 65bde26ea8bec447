package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchConfig reloads the config when its file changes. It watches the
// directory, not the file: editors and Kubernetes replace files by rename,
// which a watch on the old file would never see. Bursts of events (an
// editor's write, chmod, rename) coalesce into one reload.
func (s *server) watchConfig(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("config file watching is off; SIGHUP still reloads", "err", err)
		return
	}
	defer w.Close()
	dir, name := filepath.Split(s.file)
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		s.log.Warn("config file watching is off; SIGHUP still reloads", "err", err)
		return
	}
	var pending <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			// Kubernetes ConfigMaps swap a "..data" symlink; watch for that too.
			if filepath.Base(ev.Name) == name || filepath.Base(ev.Name) == "..data" {
				pending = time.After(250 * time.Millisecond)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.Warn("config file watch", "err", err)
		case <-pending:
			pending = nil
			s.log.Info("config file changed; reloading", "config", s.file)
			s.reload()
		}
	}
}
