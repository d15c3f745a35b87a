package alerts

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/yamldoc"
)

// The configuration file of the alert service (`mtastress alerts --config FILE`): YAML, walked
// as yaml.Node so that every error names the file, line, column and key. Unknown keys are
// errors. Keys left out stay zero in Service, and New fills in Config's defaults: they live
// there and nowhere else.

// maxConfigBytes keeps a mistaken path (a log, a binary) from being read whole.
const maxConfigBytes = 1 << 20

// FileConfig is the alert service's configuration file.
type FileConfig struct {
	Path string
	// NATS is how the service reaches the cluster its MTA nodes publish to.
	NATS events.ConnConfig
	// Service holds the settings of the file. JS, Catalog, Clock and Logger are the caller's.
	Service Config

	vals map[string]*yaml.Node // the value of each key given, by dotted path
}

// FileError is a problem at a position of a configuration file: File, Line and Column
// (1-based; 0 when not known, and YAML syntax errors carry no column), Key (the setting, dotted
// when nested, as in "nats.urls"; "" for YAML syntax) and Msg (what is wrong and what to write
// instead). It wraps ErrConfig.
type FileError yamldoc.Error

// Error reads "file:line:col: key: msg", the form editors and CI logs turn into links.
func (e *FileError) Error() string { return (*yamldoc.Error)(e).Error() }

func (e *FileError) Unwrap() error { return ErrConfig }

// LoadConfigFile reads and checks a configuration file. Every error is a *FileError.
func LoadConfigFile(path string) (FileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileConfig{}, &FileError{File: path, Msg: err.Error()}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return FileConfig{}, &FileError{File: path, Msg: err.Error()}
	}
	if len(data) > maxConfigBytes {
		return FileConfig{}, &FileError{File: path, Msg: fmt.Sprintf("over %d bytes; is this the right file?", maxConfigBytes)}
	}
	return ParseConfigFile(path, data)
}

// ParseConfigFile checks data as the configuration file named file. The files it names (NATS
// credentials and certificates, the relay's CA) must exist; the relay's CA is read.
func ParseConfigFile(file string, data []byte) (FileConfig, error) {
	fc := FileConfig{Path: file}
	w := &yamldoc.Walker{File: file}
	root := w.Document(data, "one service")
	w.Mapping(root, "", fc.keys())
	if w.Err() == nil {
		fc.vals = w.Values()
		fc.finish(w, root)
	}
	if err := w.Err(); err != nil {
		return FileConfig{}, (*FileError)(err)
	}
	return fc, nil
}

// requiredKeys have no default that could serve: where the events are, and whom to tell how.
var requiredKeys = []string{"nats", "admin", "from", "relay"}

// finish runs the checks that involve more than one key or the disk.
func (fc *FileConfig) finish(w *yamldoc.Walker, root *yaml.Node) {
	for _, k := range requiredKeys {
		if fc.vals[k] == nil {
			w.Fail(root, k, "is required; see docs/alerts.md for an example file")
			return
		}
	}
	if err := fc.NATS.Validate(); err != nil {
		w.Fail(fc.vals["nats"], "nats", "%s", strings.TrimPrefix(err.Error(), events.ErrConnConfig.Error()+": "))
		return
	}
	// Compare the backoff bounds as New will see them, defaults included.
	s := &fc.Service
	lo, hi := cmp.Or(s.RetryMin, DefaultRetryMin), cmp.Or(s.RetryMax, DefaultRetryMax)
	if hi < lo {
		key := "retry_max"
		if fc.vals[key] == nil {
			key = "retry_min"
		}
		w.Fail(fc.vals[key], key, "retry_max %v is shorter than retry_min %v", hi, lo)
		return
	}
	if w.Files(yamldoc.NATSFiles...); w.Err() != nil {
		return
	}
	if n := fc.vals["relay_tls.ca_file"]; n != nil {
		pool, err := readCAs(n.Value)
		if err != nil {
			w.Fail(n, "relay_tls.ca_file", "%v", err)
			return
		}
		s.TLSConfig.RootCAs = pool
	}
}

func readCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// ErrorAt returns a *FileError at the value of key, for a check made outside this package.
func (fc FileConfig) ErrorAt(key, format string, a ...any) error {
	e := &FileError{File: fc.Path, Key: key, Msg: fmt.Sprintf(format, a...)}
	if n := fc.vals[key]; n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// keys lists every top-level key of the file.
func (fc *FileConfig) keys() []yamldoc.Setting {
	s := &fc.Service
	return []yamldoc.Setting{
		yamldoc.Block("nats", fc.natsKeys),
		yamldoc.Into("admin", &s.Admin, yamldoc.NonEmptyList(parseAddress)),
		yamldoc.Into("from", &s.From, parseAddress),
		yamldoc.Into("relay", &s.Relay, parseHostPort),
		yamldoc.Into("helo_name", &s.HeloName, yamldoc.String),
		yamldoc.Into("require_tls", &s.RequireTLS, yamldoc.Bool),
		yamldoc.Block("relay_tls", fc.relayTLSKeys),
		yamldoc.Into("settle_window", &s.SettleWindow, parseSettleWindow),
		yamldoc.Into("rosters", &s.Rosters, parseRosters),
		yamldoc.Into("durable", &s.Durable,
			parseNATSName(durableRE, "a consumer name has no spaces, dots, '*', '>' or slashes")),
		yamldoc.Into("bucket", &s.Bucket, parseNATSName(bucketRE, bucketRule)),
		yamldoc.Into("replicas", &s.Replicas, yamldoc.Int(1, 5)),
		yamldoc.Into("retry_min", &s.RetryMin, yamldoc.MinDuration(time.Nanosecond)),
		yamldoc.Into("retry_max", &s.RetryMax, yamldoc.MinDuration(time.Nanosecond)),
		yamldoc.Into("max_alert_age", &s.MaxAlertAge, yamldoc.MinDuration(time.Nanosecond)),
		yamldoc.Into("send_timeout", &s.SendTimeout, yamldoc.MinDuration(time.Nanosecond)),
		yamldoc.Into("ack_wait", &s.AckWait, yamldoc.MinDuration(time.Second)),
		yamldoc.Into("replica", &s.Replica, parseNATSName(bucketRE, bucketRule)),
	}
}

func (fc *FileConfig) natsKeys() []yamldoc.Setting {
	c, t := &fc.NATS, &fc.NATS.TLS
	return []yamldoc.Setting{
		yamldoc.Into("urls", &c.URLs, yamldoc.NonEmptyList(parseURL)),
		yamldoc.Into("name", &c.Name, yamldoc.String),
		yamldoc.Into("user", &c.User, yamldoc.String),
		yamldoc.Into("password", &c.Password, yamldoc.String),
		yamldoc.Into("token", &c.Token, yamldoc.String),
		yamldoc.Into("nkey_file", &c.NKeyFile, yamldoc.String),
		yamldoc.Into("creds_file", &c.CredsFile, yamldoc.String),
		yamldoc.Block("tls", func() []yamldoc.Setting {
			return []yamldoc.Setting{
				yamldoc.Into("ca_file", &t.CAFile, yamldoc.String),
				yamldoc.Into("cert_file", &t.CertFile, yamldoc.String),
				yamldoc.Into("key_file", &t.KeyFile, yamldoc.String),
				yamldoc.Into("required", &t.Required, yamldoc.Bool),
			}
		}),
	}
}

// relayTLSKeys are for a relay whose certificate the system roots do not cover, or that is
// dialled by address.
func (fc *FileConfig) relayTLSKeys() []yamldoc.Setting {
	if fc.Service.TLSConfig == nil {
		fc.Service.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t := fc.Service.TLSConfig
	var caFile string // read in finish, once every key is known good
	return []yamldoc.Setting{
		yamldoc.Into("ca_file", &caFile, yamldoc.String),
		yamldoc.Into("server_name", &t.ServerName, yamldoc.String),
	}
}

// parseSettleWindow reads settle_window, where 0s turns the window off: Config spells that as
// a negative duration.
func parseSettleWindow(n *yaml.Node) (time.Duration, error) {
	d, err := yamldoc.Duration(n)
	switch {
	case err != nil:
	case d < 0:
		err = fmt.Errorf("must not be negative, got %v (0s turns it off)", d)
	case d == 0:
		d = -1
	}
	return d, err
}

// parseAddress reads a bare mail address: it goes into MAIL FROM or RCPT TO as written.
func parseAddress(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err != nil {
		return "", err
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", fmt.Errorf("%q is not a bare mail address; write it as ops@example.com", s)
	}
	return s, nil
}

func parseHostPort(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err != nil {
		return "", err
	}
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		if p, perr := strconv.Atoi(port); host == "" || perr != nil || p < 1 || p > 65535 {
			err = errors.New("it needs a host and a port from 1 to 65535")
		}
	}
	if err != nil {
		return "", fmt.Errorf("%q is not host:port (as in smtp.example.com:25 or [::1]:25): %v", s, err)
	}
	return s, nil
}

func parseURL(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err == nil && !strings.Contains(s, "://") {
		err = fmt.Errorf("%q needs a scheme, as in nats://127.0.0.1:4222", s)
	}
	return s, err
}

var (
	bucketRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	bucketRule = "use letters, digits, '-' and '_' only"
	durableRE  = regexp.MustCompile(`^[^\s.*>/\\]+$`)
)

func parseNATSName(re *regexp.Regexp, rule string) func(*yaml.Node) (string, error) {
	return func(n *yaml.Node) (string, error) {
		s, err := yamldoc.String(n)
		if err == nil && !re.MatchString(s) {
			err = fmt.Errorf("%q cannot be used: %s", s, rule)
		}
		return s, err
	}
}

// parseName reads a cluster or node name, which becomes a token of NATS subjects.
func parseName(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err == nil && events.ValidName(s) != nil {
		err = fmt.Errorf("%q is not a cluster or node name: use letters, digits, '-' and '_' only", s)
	}
	return s, err
}

// parseRosters reads cluster: [node, ...], the configured roster of each cluster named.
func parseRosters(n *yaml.Node) (map[string][]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("must be a mapping of cluster: [node, ...], not %s", yamldoc.Describe(n))
	}
	out := map[string][]string{}
	nodes := yamldoc.NonEmptyList(parseName)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamldoc.Deref(n.Content[i]), yamldoc.Deref(n.Content[i+1])
		if _, err := parseName(k); err != nil {
			return nil, yamldoc.At(k, "cluster %v", err)
		}
		if _, dup := out[k.Value]; dup {
			return nil, yamldoc.At(k, "cluster %s given twice", k.Value)
		}
		list, err := nodes(v)
		if err != nil {
			return nil, yamldoc.At(yamldoc.NodeOf(err, v), "%s: %v", k.Value, err)
		}
		for j, name := range list {
			if slices.Index(list, name) < j {
				return nil, yamldoc.At(yamldoc.Deref(v.Content[j]), "%s: node %s listed twice", k.Value, name)
			}
		}
		out[k.Value] = list
	}
	return out, nil
}

// Config returns the service's effective configuration, defaults filled in.
func (s *Service) Config() Config { return s.live().cfg }

// LogValue is what the daemon logs at start: every setting an operator can give, as New
// filled it in. Config holds no secrets (the NATS credentials are in events.ConnConfig).
func (c Config) LogValue() slog.Value {
	off := func(d time.Duration) any {
		if d < 0 {
			return "off"
		}
		return d
	}
	attrs := []slog.Attr{
		slog.Any("admin", c.Admin), slog.String("from", c.From), slog.String("relay", c.Relay),
		slog.String("helo_name", c.HeloName), slog.Bool("require_tls", c.RequireTLS),
	}
	if c.TLSConfig != nil {
		attrs = append(attrs, slog.Group("relay_tls", "server_name", c.TLSConfig.ServerName,
			"own_ca", c.TLSConfig.RootCAs != nil))
	}
	attrs = append(attrs,
		slog.Any("settle_window", off(c.SettleWindow)), slog.Any("rosters", c.Rosters),
		slog.String("durable", c.Durable), slog.String("bucket", c.Bucket),
		slog.Int("replicas", c.Replicas),
		slog.Duration("retry_min", c.RetryMin), slog.Duration("retry_max", c.RetryMax),
		slog.Any("max_alert_age", off(c.MaxAlertAge)), slog.Duration("send_timeout", c.SendTimeout),
		slog.Duration("ack_wait", c.AckWait), slog.String("replica", c.Replica),
	)
	if c.Catalog != nil {
		attrs = append(attrs, slog.Any("models", c.Catalog.Names()))
	}
	return slog.GroupValue(attrs...)
}
