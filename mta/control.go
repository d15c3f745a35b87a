package mta

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The control socket: how `mtastress queue` reaches a running node. A unix socket beside the
// spool, mode 0600, so only the spool's owner (the daemon's user, or root) can use it, serving
// small JSON requests over HTTP. Its presence decides the mode: a node that answers on it is
// running and does the work itself, so the tools never touch a spool a daemon has open.

// controlSocketPath is where the node listens. sun_path holds 108 bytes; a spool deeper than
// that gets a name under the temp dir derived from its absolute path, which the tools derive
// the same way.
func controlSocketPath(spoolDir string) string {
	abs, err := filepath.Abs(spoolDir)
	if err != nil {
		abs = spoolDir
	}
	if p := filepath.Join(abs, "control.sock"); len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "mtastress-"+hex.EncodeToString(sum[:8])+".sock")
}

type controlServer struct {
	l    net.Listener
	http *http.Server
	done chan struct{}
}

// startControl listens on the control socket. A socket file left by a crash is removed first:
// nothing answers on it, or New would not have got this far with the spool.
func (s *Server) startControl() error {
	path := controlSocketPath(s.cfg.SpoolDir)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("mta: another node is serving this spool (%s answers)", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("mta: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("mta: control socket: %w", err)
	}
	cs := &controlServer{l: l, done: make(chan struct{})}
	cs.http = &http.Server{Handler: s.controlMux(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(cs.done)
		_ = cs.http.Serve(l)
	}()
	s.control = cs
	return nil
}

func (s *Server) stopControl() {
	if s.control == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.control.http.Shutdown(ctx)
	<-s.control.done
	_ = os.Remove(controlSocketPath(s.cfg.SpoolDir))
}

// controlReply is every answer: what was asked for, or the error.
type controlReply struct {
	Entries []QueueEntry `json:"entries,omitempty"`
	Count   int          `json:"count"`
	Error   string       `json:"error,omitempty"`
	Kind    string       `json:"kind,omitempty"` // "not_found", "in_flight"
}

func (s *Server) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /queue", func(w http.ResponseWriter, _ *http.Request) {
		writeControl(w, controlReply{Entries: s.Queue()}, nil)
	})
	mux.HandleFunc("POST /queue/flush", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.QueueFlush(r.FormValue("id"))
		writeControl(w, controlReply{Count: n}, err)
	})
	ops := map[string]func(string) error{"delete": s.QueueDelete, "hold": s.QueueHold, "release": s.QueueRelease}
	for name, op := range ops {
		mux.HandleFunc("POST /queue/"+name, func(w http.ResponseWriter, r *http.Request) {
			id := r.FormValue("id")
			err := op(id)
			if err == nil {
				s.log.Info("queue "+name, "queue_id", id, "by", "control socket")
			}
			writeControl(w, controlReply{Count: 1}, err)
		})
	}
	return mux
}

func writeControl(w http.ResponseWriter, rep controlReply, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		rep.Error = err.Error()
		switch {
		case errors.Is(err, ErrNoSuchMessage):
			rep.Kind = "not_found"
		case errors.Is(err, ErrInFlight):
			rep.Kind = "in_flight"
		}
		w.WriteHeader(http.StatusConflict)
	}
	_ = json.NewEncoder(w).Encode(rep)
}
