package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/gatehouse-auth/gatehouse/store"
)

// The control socket lets user and backup commands reach a running
// gateway (bbolt allows one process per file). It is a unix socket in
// data_dir, owner-only, speaking JSON over HTTP.

// listenControl binds the control socket, replacing a stale one left by a
// gateway that did not shut down cleanly.
func listenControl(path string) (net.Listener, error) {
	if len(path) > 100 {
		return nil, fmt.Errorf("data_dir path is too long for a control socket (%d bytes); use a shorter data_dir", len(path))
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another gatehouse is answering on %s", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot create the control socket: %w", pathError(err))
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot protect the control socket: %w", pathError(err))
	}
	return ln, nil
}

// userResponse is the control socket's answer to a user command.
type userResponse struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

func (s *server) serveControl() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/user", func(w http.ResponseWriter, r *http.Request) {
		var req userRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		out, err := execUser(s.db, req, s.audit)
		resp := userResponse{Output: out}
		if err != nil {
			resp.Error = err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("GET /v1/backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := s.db.Backup(w); err != nil {
			s.log.Error("backup failed", "err", err)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	_ = srv.Serve(s.control)
}

// audit logs an administrative change made through the CLI.
func (s *server) audit(event, user string) {
	s.log.Info("audit", "event", event, "user", user, "via", "cli")
}

// controlClient talks to a running gateway, or reports that none runs.
type controlClient struct {
	http *http.Client
}

var errNotRunning = errors.New("gatehouse is not running")

func dialControl(path string) (*controlClient, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, errNotRunning
		}
		return nil, fmt.Errorf("cannot reach the running gateway: %w", err)
	}
	c.Close()
	return &controlClient{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}, nil
}

func (c *controlClient) user(req userRequest) (string, error) {
	body, _ := json.Marshal(req)
	resp, err := c.http.Post("http://gatehouse/v1/user", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("cannot reach the running gateway: %w", err)
	}
	defer resp.Body.Close()
	var out userResponse
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return "", fmt.Errorf("the running gateway refused the command (status %d)", resp.StatusCode)
	}
	if out.Error != "" {
		return out.Output, errors.New(out.Error)
	}
	return out.Output, nil
}

func (c *controlClient) backup(w io.Writer) error {
	resp, err := c.http.Get("http://gatehouse/v1/backup")
	if err != nil {
		return fmt.Errorf("cannot reach the running gateway: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the running gateway refused the backup (status %d)", resp.StatusCode)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// withStore runs fn against the running gateway's store through the
// socket (remote) or, when no gateway runs, against the file (local).
func withStore(cfg *Config, remote func(*controlClient) error, local func(*store.DB) error) error {
	c, err := dialControl(cfg.SocketPath())
	if err == nil {
		return remote(c)
	}
	if !errors.Is(err, errNotRunning) {
		return err
	}
	if _, statErr := os.Stat(cfg.DataDir); statErr != nil {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("cannot create data_dir: %w", pathError(err))
		}
	}
	db, err := store.Open(cfg.DBPath(), store.Options{Timeout: time.Second})
	if errors.Is(err, store.ErrInUse) {
		return fmt.Errorf("the database %s is in use by another process, and no gateway answers on its control socket", cfg.DBPath())
	} else if err != nil {
		return fmt.Errorf("cannot open the database: %w", err)
	}
	defer db.Close()
	return local(db)
}
