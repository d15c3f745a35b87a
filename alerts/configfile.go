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

	"github.com/mtastress/mtastress/yamldoc"

	"github.com/mtastress/mtastress/events"
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

// FileError is a problem at a position of a configuration file. It wraps ErrConfig.
type FileError struct {
	File         string
	Line, Column int    // 1-based; 0 when not known (YAML syntax errors carry no column)
	Key          string // the setting, dotted when nested ("nats.urls"); "" for YAML syntax
	Msg          string // what is wrong and what to write instead
}

// Error reads "file:line:col: key: msg", the form editors and CI logs turn into links.
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

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
	p := &cfgParser{file: file, vals: map[string]*yaml.Node{}}
	root := p.document(data)
	if p.err == nil {
		p.mapping(root, "", fc.keys())
	}
	if p.err == nil {
		fc.finish(p, root)
	}
	if p.err != nil {
		return FileConfig{}, p.err
	}
	fc.vals = p.vals
	return fc, nil
}

// requiredKeys have no default that could serve: where the events are, and whom to tell how.
var requiredKeys = []string{"nats", "admin", "from", "relay"}

// finish runs the checks that involve more than one key or the disk.
func (fc *FileConfig) finish(p *cfgParser, root *yaml.Node) {
	for _, k := range requiredKeys {
		if p.vals[k] == nil {
			p.fail(root, k, "is required; see docs/alerts.md for an example file")
			return
		}
	}
	if err := fc.NATS.Validate(); err != nil {
		p.fail(p.vals["nats"], "nats", "%s", strings.TrimPrefix(err.Error(), events.ErrConnConfig.Error()+": "))
		return
	}
	// Compare the backoff bounds as New will see them, defaults included.
	s := &fc.Service
	lo, hi := cmp.Or(s.RetryMin, DefaultRetryMin), cmp.Or(s.RetryMax, DefaultRetryMax)
	if hi < lo {
		key := "retry_max"
		if p.vals[key] == nil {
			key = "retry_min"
		}
		p.fail(p.vals[key], key, "retry_max %v is shorter than retry_min %v", hi, lo)
		return
	}
	for _, k := range []string{"nats.nkey_file", "nats.creds_file", "nats.tls.ca_file",
		"nats.tls.cert_file", "nats.tls.key_file"} {
		if n := p.vals[k]; n != nil {
			if err := readable(n.Value); err != nil {
				p.fail(n, k, "%v", err)
				return
			}
		}
	}
	if n := p.vals["relay_tls.ca_file"]; n != nil {
		pool, err := readCAs(n.Value)
		if err != nil {
			p.fail(n, "relay_tls.ca_file", "%v", err)
			return
		}
		s.TLSConfig.RootCAs = pool
	}
}

func readable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	return nil
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

// setting is one key of the file and how its value is read.
type setting struct {
	key  string
	read func(p *cfgParser, n *yaml.Node, path string)
}

// opt is a setting read by parse into dst.
func opt[T any](key string, dst *T, parse func(*yaml.Node) (T, error)) setting {
	return setting{key: key, read: func(p *cfgParser, n *yaml.Node, path string) {
		v, err := parse(n)
		if err != nil {
			p.failErr(n, path, err)
			return
		}
		*dst = v
	}}
}

// block is a setting whose value is a mapping of its own keys.
func block(key string, keys func() []setting) setting {
	return setting{key: key, read: func(p *cfgParser, n *yaml.Node, path string) {
		p.mapping(n, path, keys())
	}}
}

// keys lists every top-level key of the file.
func (fc *FileConfig) keys() []setting {
	s := &fc.Service
	return []setting{
		block("nats", fc.natsKeys),
		opt("admin", &s.Admin, listOf(parseAddress, true)),
		opt("from", &s.From, parseAddress),
		opt("relay", &s.Relay, parseHostPort),
		opt("helo_name", &s.HeloName, parseString),
		opt("require_tls", &s.RequireTLS, parseBool),
		block("relay_tls", fc.relayTLSKeys),
		// 0s turns the settle window off, which Config spells as a negative duration.
		opt("settle_window", &s.SettleWindow, func(n *yaml.Node) (time.Duration, error) {
			d, err := parseDuration(0)(n)
			if err == nil && d == 0 {
				d = -1
			}
			return d, err
		}),
		opt("rosters", &s.Rosters, parseRosters),
		opt("durable", &s.Durable, parseNATSName(durableRE, "a consumer name has no spaces, dots, '*', '>' or slashes")),
		opt("bucket", &s.Bucket, parseNATSName(bucketRE, "use letters, digits, '-' and '_' only")),
		opt("replicas", &s.Replicas, parseCount(1, 5)),
		opt("retry_min", &s.RetryMin, parseDuration(time.Nanosecond)),
		opt("retry_max", &s.RetryMax, parseDuration(time.Nanosecond)),
		opt("max_alert_age", &s.MaxAlertAge, parseDuration(time.Nanosecond)),
		opt("send_timeout", &s.SendTimeout, parseDuration(time.Nanosecond)),
		opt("ack_wait", &s.AckWait, parseDuration(time.Second)),
		opt("replica", &s.Replica, parseNATSName(bucketRE, "use letters, digits, '-' and '_' only")),
	}
}

func (fc *FileConfig) natsKeys() []setting {
	c, t := &fc.NATS, &fc.NATS.TLS
	return []setting{
		opt("urls", &c.URLs, listOf(parseURL, true)),
		opt("name", &c.Name, parseString),
		opt("user", &c.User, parseString),
		opt("password", &c.Password, parseString),
		opt("token", &c.Token, parseString),
		opt("nkey_file", &c.NKeyFile, parseString),
		opt("creds_file", &c.CredsFile, parseString),
		block("tls", func() []setting {
			return []setting{
				opt("ca_file", &t.CAFile, parseString),
				opt("cert_file", &t.CertFile, parseString),
				opt("key_file", &t.KeyFile, parseString),
				opt("required", &t.Required, parseBool),
			}
		}),
	}
}

// relayTLSKeys are for a relay whose certificate the system roots do not cover, or that is
// dialled by address.
func (fc *FileConfig) relayTLSKeys() []setting {
	if fc.Service.TLSConfig == nil {
		fc.Service.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t := fc.Service.TLSConfig
	var caFile string // read in finish, once every key is known good
	return []setting{
		opt("ca_file", &caFile, parseString),
		opt("server_name", &t.ServerName, parseString),
	}
}

// cfgParser walks a configuration file's yaml.Node tree. It keeps the first error only: what
// follows a mistake is read against half-set values and would be noise.
type cfgParser struct {
	file string
	err  *FileError
	vals map[string]*yaml.Node
}

// nodeError is a value's problem at a node inside it (a list item, a roster's key).
type nodeError struct {
	n   *yaml.Node
	msg string
}

func (e *nodeError) Error() string { return e.msg }

func errAt(n *yaml.Node, format string, a ...any) error {
	return &nodeError{n: n, msg: fmt.Sprintf(format, a...)}
}

func (p *cfgParser) fail(n *yaml.Node, key, format string, a ...any) {
	if p.err != nil {
		return
	}
	p.err = &FileError{File: p.file, Key: key, Msg: fmt.Sprintf(format, a...)}
	if n != nil {
		p.err.Line, p.err.Column = n.Line, n.Column
	}
}

// failErr records err of key's value n, at the inner node err names if it does.
func (p *cfgParser) failErr(n *yaml.Node, key string, err error) {
	var ne *nodeError
	if errors.As(err, &ne) && ne.n != nil {
		n = ne.n
	}
	p.fail(n, key, "%s", err.Error())
}

// document parses data as one YAML document and returns its top-level node.
func (p *cfgParser) document(data []byte) *yaml.Node {
	n, err := yamldoc.Parse(data, "one service")
	if err != nil {
		p.fail(&yaml.Node{Line: err.Line, Column: err.Column}, "", "%s", err.Msg)
	}
	return n
}

// mapping reads n, a mapping, into its settings; prefix names it in errors ("" at the top).
func (p *cfgParser) mapping(n *yaml.Node, prefix string, settings []setting) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		what := prefix
		if what == "" {
			what = "the file"
		}
		p.fail(n, prefix, "%s must be a mapping of keys (key: value), not %s", what, describe(n))
		return
	}
	byKey := make(map[string]setting, len(settings))
	for _, s := range settings {
		byKey[s.key] = s
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		s, known := byKey[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.fail(k, prefix, "a key must be a plain name, not %s", describe(k))
		case !known:
			p.fail(k, path, "unknown key; %s", knownKeys(prefix, settings))
		case seen[k.Value] != nil:
			p.fail(k, path, "given twice (first on line %d)", seen[k.Value].Line)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			p.fail(k, path, "has no value; give one or remove the key")
		default:
			seen[k.Value] = k
			p.vals[path] = v
			s.read(p, v, path)
		}
	}
}

func knownKeys(prefix string, settings []setting) string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.key
	}
	slices.Sort(names)
	where := "at the top"
	if prefix != "" {
		where = "in " + prefix
	}
	return fmt.Sprintf("known keys %s: %s", where, strings.Join(names, ", "))
}

// deref follows an alias to its anchor.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an empty value"
}

// Readers of single values: a plain error is about the value as a whole, errAt about a node
// inside it.

func parseString(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("must be a single value, not %s", describe(n))
	}
	if n.Value == "" {
		return "", errors.New("must not be empty")
	}
	return n.Value, nil
}

func parseBool(n *yaml.Node) (bool, error) {
	s, err := parseString(n)
	if err != nil {
		return false, err
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

func parseCount(lo, hi int) func(*yaml.Node) (int, error) {
	return func(n *yaml.Node) (int, error) {
		s, err := parseString(n)
		if err != nil {
			return 0, err
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", s)
		}
		if v < lo || v > hi {
			return 0, fmt.Errorf("must be from %d to %d, got %d", lo, hi, v)
		}
		return v, nil
	}
}

// parseDuration reads a Go duration of at least lo.
func parseDuration(lo time.Duration) func(*yaml.Node) (time.Duration, error) {
	return func(n *yaml.Node) (time.Duration, error) {
		s, err := parseString(n)
		if err != nil {
			return 0, err
		}
		d, err := time.ParseDuration(s)
		switch {
		case err != nil && strings.HasSuffix(s, "d"):
			return 0, fmt.Errorf("%q is not a Go duration, which has no days: write hours, as in \"48h\"", s)
		case err != nil:
			return 0, fmt.Errorf("%q is not a Go duration: write it with a unit, as in \"90s\", \"2m\" or \"1h30m\"", s)
		case d < lo && lo > 0:
			return 0, fmt.Errorf("must be at least %v, got %v", lo, d)
		case d < lo:
			return 0, fmt.Errorf("must not be negative, got %v (0s turns it off)", d)
		}
		return d, nil
	}
}

// parseAddress reads a bare mail address: it goes into MAIL FROM or RCPT TO as written.
func parseAddress(n *yaml.Node) (string, error) {
	s, err := parseString(n)
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
	s, err := parseString(n)
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
	s, err := parseString(n)
	if err == nil && !strings.Contains(s, "://") {
		err = fmt.Errorf("%q needs a scheme, as in nats://127.0.0.1:4222", s)
	}
	return s, err
}

var (
	bucketRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	durableRE = regexp.MustCompile(`^[^\s.*>/\\]+$`)
)

func parseNATSName(re *regexp.Regexp, rule string) func(*yaml.Node) (string, error) {
	return func(n *yaml.Node) (string, error) {
		s, err := parseString(n)
		if err == nil && !re.MatchString(s) {
			err = fmt.Errorf("%q cannot be used: %s", s, rule)
		}
		return s, err
	}
}

// parseName reads a cluster or node name, which becomes a token of NATS subjects.
func parseName(n *yaml.Node) (string, error) {
	s, err := parseString(n)
	if err == nil && events.ValidName(s) != nil {
		err = fmt.Errorf("%q is not a cluster or node name: use letters, digits, '-' and '_' only", s)
	}
	return s, err
}

// parseRosters reads cluster: [node, ...], the configured roster of each cluster named.
func parseRosters(n *yaml.Node) (map[string][]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("must be a mapping of cluster: [node, ...], not %s", describe(n))
	}
	out := map[string][]string{}
	nodes := listOf(parseName, true)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if _, err := parseName(k); err != nil {
			return nil, errAt(k, "cluster %v", err)
		}
		if _, dup := out[k.Value]; dup {
			return nil, errAt(k, "cluster %s given twice", k.Value)
		}
		list, err := nodes(v)
		if err != nil {
			return nil, errAt(errNode(err, v), "%s: %v", k.Value, err)
		}
		for j, name := range list {
			if slices.Index(list, name) < j {
				return nil, errAt(deref(v.Content[j]), "%s: node %s listed twice", k.Value, name)
			}
		}
		out[k.Value] = list
	}
	return out, nil
}

func errNode(err error, whole *yaml.Node) *yaml.Node {
	var ne *nodeError
	if errors.As(err, &ne) && ne.n != nil {
		return ne.n
	}
	return whole
}

// listOf reads a list of items; a single value is a list of one. need: it must not be empty.
func listOf[T any](item func(*yaml.Node) (T, error), need bool) func(*yaml.Node) ([]T, error) {
	return func(n *yaml.Node) ([]T, error) {
		items := []*yaml.Node{n}
		switch n.Kind {
		case yaml.SequenceNode:
			items = n.Content
		case yaml.MappingNode:
			return nil, errors.New("must be a list ([a, b] or one \"- item\" a line), not a mapping")
		}
		if need && len(items) == 0 {
			return nil, errors.New("must list at least one")
		}
		out := make([]T, 0, len(items))
		for _, it := range items {
			v, err := item(deref(it))
			if err != nil {
				return nil, errAt(it, "%v", err)
			}
			out = append(out, v)
		}
		return out, nil
	}
}

// Config returns the service's effective configuration, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

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
