package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// outbox keeps the transitions not yet acknowledged by JetStream in a file beside the spool, so
// that neither NATS being away nor an MTA restart loses one. It is small: a stress episode makes
// two transitions, and the file is rewritten empty once they are acknowledged.
//
// Each line is one envelope in JSON. Appends are fsynced; removal rewrites the file through a
// temp file, rename and directory fsync, so a crash leaves either the old or the new list.
type outbox struct {
	path string
}

// load reads the transitions left by an earlier run. A torn last line (a crash in the middle
// of an append) is skipped and reported; every complete line is kept.
func (o *outbox) load() ([]*Envelope, int, error) {
	if o.path == "" {
		return nil, 0, nil
	}
	b, err := os.ReadFile(o.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("events: outbox: %w", err)
	}
	var out []*Envelope
	torn := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		env := new(Envelope)
		if err := json.Unmarshal(line, env); err != nil || env.ID == "" {
			torn++
			continue
		}
		out = append(out, env)
	}
	return out, torn, sc.Err()
}

// append adds transitions durably.
func (o *outbox) append(envs []*Envelope) error {
	if o.path == "" || len(envs) == 0 {
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, env := range envs {
		line, err := json.Marshal(env)
		if err != nil {
			f.Close()
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replace rewrites the outbox to hold exactly envs.
func (o *outbox) replace(envs []*Envelope) error {
	if o.path == "" {
		return nil
	}
	tmp := o.path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := (&outbox{path: tmp}).append(envs); err != nil {
		return err
	}
	if len(envs) == 0 {
		if err := os.WriteFile(tmp, nil, 0o640); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(o.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
