package mta

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/yamldoc"
)

// The configuration file of a production node (`mtastress mta --config FILE`): YAML, walked
// as yaml.Node so that every error names the file, line, column and key. Unknown keys are
// errors; where the file is silent, DefaultConfig's values hold.

// DefaultShutdownTimeout bounds a graceful stop when the file sets no shutdown_timeout.
const DefaultShutdownTimeout = 30 * time.Second

// maxConfigBytes keeps a mistaken path (a log, a binary) from being read whole.
const maxConfigBytes = 1 << 20

// FileConfig is a node's configuration file: every setting of Config under its YAML key, plus
// what the daemon around the Server needs.
type FileConfig struct {
	// Path is the file it was read from.
	Path string
	// MTA holds the Server's settings, DefaultConfig's where the file is silent. Its Limit is
	// 0: the command resolves MTA.Model through the model catalog and passes the limit to
	// MTAConfig.
	MTA Config
	// Listen are the SMTP listeners whose connections hold slots; ListenExempt serve without
	// slots and never under stress settings (submission, trusted networks).
	Listen, ListenExempt []string
	// ListenProxy are slot listeners behind a load balancer: each connection comes from one
	// of MTA.ProxyFrom and starts with a PROXY protocol header (v1 or v2).
	ListenProxy []string
	// UsersFile names a file of valid local parts, one a line; they join MTA.Users.
	UsersFile string
	// NATS is where load samples and stress transitions go; nil: mail flows without events.
	NATS *NATSConfig
	// Metrics is the listen address of the Prometheus /metrics endpoint; "" serves none.
	Metrics string
	// ShutdownTimeout bounds a graceful stop: sessions in a transaction finish until then.
	ShutdownTimeout time.Duration

	fileUsers []string              // read from UsersFile
	vals      map[string]*yaml.Node // the value of each key given, by dotted path
}

// NATSConfig is the nats block: the connection (events.ConnConfig's keys) and the node's event
// state.
type NATSConfig struct {
	events.ConnConfig
	// StreamReplicas is the replica count of the streams the node creates or updates at start.
	StreamReplicas int
	// StateDir keeps the event sequence counter and the outbox of unacknowledged transitions.
	// It lies beside the spool, not inside it (default "<spool>.events"): the spool holds only
	// mail, so that moving or wiping one never touches the other.
	StateDir string
}

// FileError is a problem at a position of a configuration file: File, Line and Column
// (1-based; 0 when not known), Key (the setting, dotted when nested, as in "nats.urls"; "" for
// YAML syntax) and Msg (what is wrong and what to write instead). It wraps ErrInvalidConfig.
type FileError yamldoc.Error

// Error reads "file:line:col: key: msg", the form editors and CI logs turn into links.
func (e *FileError) Error() string { return (*yamldoc.Error)(e).Error() }

func (e *FileError) Unwrap() error { return ErrInvalidConfig }

// LoadConfigFile reads and checks a configuration file, and the users file it names. Every
// error is a *FileError.
func LoadConfigFile(path string) (FileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileConfig{}, &FileError{File: path, Msg: pathErrorText(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return FileConfig{}, &FileError{File: path, Msg: pathErrorText(err)}
	}
	if len(data) > maxConfigBytes {
		msg := fmt.Sprintf("over %d bytes; is this the right file?", maxConfigBytes)
		return FileConfig{}, &FileError{File: path, Msg: msg}
	}
	return ParseConfigFile(path, data)
}

// pathErrorText is err without the path, which FileError already names.
func pathErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// ParseConfigFile checks data as the configuration file named file. A users_file it names is
// read from disk.
func ParseConfigFile(file string, data []byte) (FileConfig, error) {
	fc := FileConfig{Path: file, MTA: DefaultConfig(), ShutdownTimeout: DefaultShutdownTimeout}
	w := &yamldoc.Walker{File: file}
	root := w.Document(data, "one node")
	w.Mapping(root, "", fields(fc.settings()))
	if w.Err() == nil {
		fc.vals = w.Values()
		fc.finish(w, root)
	}
	if err := w.Err(); err != nil {
		return FileConfig{}, (*FileError)(err)
	}
	return fc, nil
}

// requiredKeys have no default that could serve a production node.
var requiredKeys = []string{"node", "cluster", "model", "hostname", "listen", "spool", "relay"}

// finish runs the checks that involve more than one key, and reads the users file.
func (fc *FileConfig) finish(w *yamldoc.Walker, root *yaml.Node) {
	for _, k := range requiredKeys {
		if fc.vals[k] == nil {
			w.Fail(root, k, "is required")
			return
		}
	}
	if fc.MTA.RetryMax < fc.MTA.RetryMin {
		w.Fail(fc.vals["retry_max"], "retry_max", "%v is shorter than retry_min %v", fc.MTA.RetryMax, fc.MTA.RetryMin)
	}
	fc.finishTLS(w)
	if len(fc.ListenProxy) > 0 && len(fc.MTA.ProxyFrom) == 0 {
		w.Fail(fc.vals["listen_proxy"], "listen_proxy", "needs proxy_from: the balancer addresses allowed to connect")
	}
	w.Files(yamldoc.NATSFiles...)
	if len(fc.MTA.ProxyFrom) > 0 && len(fc.ListenProxy) == 0 {
		w.Fail(fc.vals["proxy_from"], "proxy_from", "has no listener to apply to: add listen_proxy, the listeners behind the balancer, or remove proxy_from")
	}
	if fc.UsersFile != "" {
		users, err := readUsersFile(fc.UsersFile)
		if err != nil {
			w.Fail(fc.vals["users_file"], "users_file", "%v", err)
		}
		fc.fileUsers = users
	}
	if fc.NATS != nil {
		fc.finishNATS(w)
	}
}

func (fc *FileConfig) finishNATS(w *yamldoc.Walker) {
	if err := fc.NATS.Validate(); err != nil {
		w.Fail(fc.vals["nats"], "nats", "%s", strings.TrimPrefix(err.Error(), events.ErrConnConfig.Error()+": "))
		return
	}
	if fc.NATS.StateDir == "" {
		fc.NATS.StateDir = filepath.Clean(fc.MTA.SpoolDir) + ".events"
	}
	spool, _ := filepath.Abs(fc.MTA.SpoolDir)
	state, _ := filepath.Abs(fc.NATS.StateDir)
	if rel, err := filepath.Rel(spool, state); err == nil && !strings.HasPrefix(rel, "..") {
		w.Fail(fc.vals["nats.state_dir"], "nats.state_dir", "%s is inside the spool %s; put it beside it",
			fc.NATS.StateDir, fc.MTA.SpoolDir)
	}
}

// MTAConfig is the Server's config for the model's process limit: MTA with Limit set and the
// users file's users added. Logger, Clock and Events are the caller's to set.
func (fc FileConfig) MTAConfig(limit int) Config {
	cfg := fc.MTA
	cfg.Limit = limit
	cfg.Users = append(slices.Clone(fc.MTA.Users), fc.fileUsers...)
	return cfg
}

// ErrorAt returns a *FileError at the value of key, for a check made outside this package (a
// model not in the catalog).
func (fc FileConfig) ErrorAt(key, format string, a ...any) error {
	e := &FileError{File: fc.Path, Key: key, Msg: fmt.Sprintf(format, a...)}
	if n := fc.vals[key]; n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// LogValue is the effective configuration, defaults included, with secrets redacted: what the
// daemon logs at start.
func (fc FileConfig) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, s := range fc.settings() {
		v := s.value()
		if s.show != nil {
			v = s.show()
		}
		attrs = append(attrs, slog.Any(s.key, v))
	}
	return slog.GroupValue(attrs...)
}

// Changes compares next with fc, the running configuration, and names the keys that differ:
// those a reload applies, and those that need a restart.
func (fc FileConfig) Changes(next FileConfig) (reloaded, restart []string) {
	nextVals := map[string]any{}
	for _, s := range next.settings() {
		nextVals[s.key] = s.value()
	}
	for _, s := range fc.settings() {
		if reflect.DeepEqual(s.value(), nextVals[s.key]) {
			continue
		}
		if s.reload {
			reloaded = append(reloaded, s.key)
		} else {
			restart = append(restart, s.key)
		}
	}
	return reloaded, restart
}

// WithReloaded returns fc with the settings a reload applies taken from next: the running
// configuration after a reload, so that a restart-only change keeps being reported.
func (fc FileConfig) WithReloaded(next FileConfig) FileConfig {
	out := fc
	out.MTA.Domains, out.MTA.Users = next.MTA.Domains, next.MTA.Users
	out.UsersFile, out.fileUsers = next.UsersFile, next.fileUsers
	out.MTA.RelayNetworks, out.MTA.Relay = next.MTA.RelayNetworks, next.MTA.Relay
	out.MTA.Transports, out.MTA.RateLimits = next.MTA.Transports, next.MTA.RateLimits
	out.MTA.HopTLS = next.MTA.HopTLS
	out.MTA.TLSCertFile, out.MTA.TLSKeyFile = next.MTA.TLSCertFile, next.MTA.TLSKeyFile
	// The session limits (tuning.go).
	n, o := next.MTA, &out.MTA
	o.SlotWait, o.WaitMax, o.ClientCap = n.SlotWait, n.WaitMax, n.ClientCap
	o.CommandTimeout, o.StressCommandTimeout, o.MinDataRate = n.CommandTimeout, n.StressCommandTimeout, n.MinDataRate
	o.HardErrorLimit, o.StressHardErrorLimit = n.HardErrorLimit, n.StressHardErrorLimit
	o.JunkLimit, o.StressJunkLimit, o.HopcountLimit = n.JunkLimit, n.StressJunkLimit, n.HopcountLimit
	return out
}

// finishTLS checks that the certificate and key go together and load, so that --check catches
// an expired path or a key that does not match before a restart does.
func (fc *FileConfig) finishTLS(w *yamldoc.Walker) {
	cert, key := fc.MTA.TLSCertFile, fc.MTA.TLSKeyFile
	switch {
	case cert == "" && key == "":
	case cert == "":
		w.Fail(fc.vals["tls_key_file"], "tls_key_file", "needs tls_cert_file as well")
	case key == "":
		w.Fail(fc.vals["tls_cert_file"], "tls_cert_file", "needs tls_key_file as well")
	default:
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			w.Fail(fc.vals["tls_cert_file"], "tls_cert_file", "%v", err)
		}
	}
}
