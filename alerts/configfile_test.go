package alerts

import (
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// baseFile is a minimal valid file: the four required keys, on lines 1 to 4.
const baseFile = `nats: {urls: [nats://127.0.0.1:4222]}
admin: [ops@example.test]
from: mtastress@example.test
relay: 127.0.0.1:1025
`

func TestExampleConfigFileParses(t *testing.T) {
	fc, err := LoadConfigFile("testdata/alerts.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := fc.Service
	switch {
	case len(fc.NATS.URLs) != 3 || fc.NATS.User != "mtastress-alerts":
		t.Errorf("nats %+v", fc.NATS.Redacted())
	case len(s.Admin) != 2 || s.From != "mtastress@example.com" || s.Relay != "smtp-relay.example.com:587":
		t.Errorf("admin %v, from %q, relay %q", s.Admin, s.From, s.Relay)
	case !s.RequireTLS || s.TLSConfig == nil || s.TLSConfig.ServerName != "smtp-relay.example.com":
		t.Errorf("require_tls %v, relay_tls %+v", s.RequireTLS, s.TLSConfig)
	case s.SettleWindow != 2*time.Minute || s.MaxAlertAge != 24*time.Hour || s.RetryMax != time.Minute:
		t.Errorf("durations: settle %v, max age %v, retry max %v", s.SettleWindow, s.MaxAlertAge, s.RetryMax)
	case s.Replicas != 3 || s.Durable != DefaultDurable || s.Bucket != DefaultBucket || s.Replica != "alerts-1":
		t.Errorf("jetstream: replicas %d, durable %q, bucket %q, replica %q", s.Replicas, s.Durable, s.Bucket, s.Replica)
	}
	want := map[string][]string{"edge": {"edge-1", "edge-2", "edge-3"}, "backup": {"backup-1"}}
	if diff := cmp.Diff(want, s.Rosters); diff != "" {
		t.Errorf("rosters (-want +got):\n%s", diff)
	}
}

func TestConfigFileLeavesDefaultsToNew(t *testing.T) {
	fc, err := ParseConfigFile("alerts.yaml", []byte(baseFile+"settle_window: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := fc.Service
	if s.RetryMin != 0 || s.Durable != "" || s.MaxAlertAge != 0 || s.TLSConfig != nil {
		t.Errorf("the file set what it did not name: %+v", s)
	}
	if s.SettleWindow >= 0 {
		t.Errorf("settle_window: 0s gives %v, want a negative duration (off)", s.SettleWindow)
	}
}

func TestConfigLogValueNamesTheEffectiveSettings(t *testing.T) {
	c := Config{Admin: []string{"ops@example.test"}, From: "a@example.test", Relay: "127.0.0.1:25",
		SettleWindow: -1, RetryMin: time.Second, Bucket: DefaultBucket}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "alerts", c)
	for _, want := range []string{"alerts.relay=127.0.0.1:25", "alerts.settle_window=off",
		"alerts.retry_min=1s", "alerts.bucket=mtastress_alerts"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log line lacks %s:\n%s", want, b.String())
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each case is baseFile with lines replaced (by number, from 1) or appended.
	cases := []struct {
		name      string
		file      string
		line, col int
		key, msg  string
	}{
		{"a misspelt key", baseFile + "relya: x\n", 5, 1, "relya", `unknown key; did you mean "relay"?`},
		{"an unknown key", baseFile + "colour: x\n", 5, 1, "colour", "unknown key; known keys at the top: ack_wait, admin, bucket, "},
		{"an unknown key in a block", baseFile + "relay_tls: {verify: x}\n", 5, 13, "relay_tls.verify",
			"known keys in relay_tls: ca_file, server_name"},
		{"an unknown key in nats.tls", "nats: {urls: [nats://x:4222], tls: {verify: true}}\n" + lines(baseFile, 2),
			1, 37, "nats.tls.verify", "unknown key"},
		{"a key given twice", baseFile + "relay: 127.0.0.1:2525\n", 5, 1, "relay", "given twice (first on line 4)"},
		{"a key without value", baseFile + "helo_name:\n", 5, 1, "helo_name", "has no value"},
		{"a missing required key", lines(baseFile, 1, 2, 3), 1, 1, "relay", "is required"},
		{"a missing nats block", lines(baseFile, 2, 3, 4), 1, 1, "nats", "is required"},
		{"a duration in days", baseFile + "settle_window: 2d\n", 5, 16, "settle_window", "no days"},
		{"a duration without unit", baseFile + "max_alert_age: 24\n", 5, 16, "max_alert_age", "with a unit"},
		{"a negative settle window", baseFile + "settle_window: -1s\n", 5, 16, "settle_window", "must not be negative"},
		{"a zero retry", baseFile + "retry_min: 0s\n", 5, 12, "retry_min", "must be at least 1ns"},
		{"retry bounds reversed", baseFile + "retry_min: 2m\nretry_max: 1m\n", 6, 12, "retry_max",
			"retry_max 1m0s is shorter than retry_min 2m0s"},
		{"retry_min above the default retry_max", baseFile + "retry_min: 5m\n", 5, 12, "retry_min",
			"retry_max 1m0s is shorter than retry_min 5m0s"},
		{"a bad boolean", baseFile + "require_tls: yes\n", 5, 14, "require_tls", `"yes" is not true or false`},
		{"too many replicas", baseFile + "replicas: 7\n", 5, 11, "replicas", "from 1 to 5, got 7"},
		{"replicas not a number", baseFile + "replicas: three\n", 5, 11, "replicas", "not a whole number"},
		{"an admin with a display name", replace(baseFile, 2, "admin: [ops@example.test, Ops <ops2@example.test>]"),
			2, 27, "admin", "not a bare mail address"},
		{"an empty admin list", replace(baseFile, 2, "admin: []"), 2, 8, "admin", "at least one"},
		{"admin as a mapping", replace(baseFile, 2, "admin: {to: ops@example.test}"), 2, 8, "admin", "not a mapping"},
		{"a sender that is no address", replace(baseFile, 3, "from: mtastress"), 3, 7, "from", "not a bare mail address"},
		{"a relay without port", replace(baseFile, 4, "relay: smtp.example.com"), 4, 8, "relay", "not host:port"},
		{"a relay with port 0", replace(baseFile, 4, "relay: smtp.example.com:0"), 4, 8, "relay", "port from 1 to 65535"},
		{"a NATS url without scheme", replace(baseFile, 1, "nats: {urls: [nats://a:4222, 127.0.0.1:4222]}"),
			1, 30, "nats.urls", "needs a scheme"},
		{"NATS without urls", replace(baseFile, 1, "nats: {name: alerts}"), 1, 7, "nats", "no urls"},
		{"two NATS credentials", replace(baseFile, 1, "nats: {urls: [nats://a:4222], user: u, token: t}"),
			1, 7, "nats", "set only one of"},
		{"a NATS creds file that is not there", replace(baseFile, 1,
			"nats: {urls: [nats://a:4222], creds_file: /nonexistent/alerts.creds}"),
			1, 43, "nats.creds_file", "no such file"},
		{"a relay CA that is no PEM", baseFile + "relay_tls: {ca_file: " + notPEM + "}\n", 5, 22,
			"relay_tls.ca_file", "holds no PEM certificate"},
		{"a roster node with a dot", baseFile + "rosters: {edge: [edge-1, edge.2]}\n", 5, 26, "rosters",
			`edge: "edge.2" is not a cluster or node name`},
		{"a roster node listed twice", baseFile + "rosters:\n  edge: [a, b, a]\n", 6, 16, "rosters", "node a listed twice"},
		{"a roster cluster with a space", baseFile + "rosters: {\"edge 1\": [a]}\n", 5, 11, "rosters",
			"is not a cluster or node name"},
		{"an empty roster", baseFile + "rosters: {edge: []}\n", 5, 17, "rosters", "at least one"},
		{"a bucket with a dot", baseFile + "bucket: mtastress.alerts\n", 5, 9, "bucket", "cannot be used"},
		{"a durable with a space", baseFile + "durable: \"my alerts\"\n", 5, 10, "durable", "cannot be used"},
		{"the file a list", "- nats\n", 1, 1, "", "the file must be a mapping"},
		{"an empty file", "# nothing\n", 1, 1, "", "the file is empty"},
		{"two documents", baseFile + "---\nrelay: x:1\n", 5, 1, "", "a second YAML document"},
		// The library reports the list's own line, one early; see yamldoc's syntax.
		{"an unclosed list", replace(baseFile, 2, "admin: [ops@example.test"), 2, 0, "",
			"YAML syntax: did not find expected ',' or ']'"},
		{"a tab in the indentation", baseFile + "rosters:\n\tedge: [a]\n", 6, 0, "", "YAML syntax: found character that cannot start any token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfigFile("alerts.yaml", []byte(c.file))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *FileError", err)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error does not wrap ErrConfig")
			}
			if fe.Line != c.line || fe.Column != c.col || fe.Key != c.key || !strings.Contains(fe.Msg, c.msg) {
				t.Errorf("got %d:%d key %q: %s\nwant %d:%d key %q: …%s…", fe.Line, fe.Column, fe.Key, fe.Msg,
					c.line, c.col, c.key, c.msg)
			}
			if !strings.HasPrefix(err.Error(), "alerts.yaml:") {
				t.Errorf("%q does not start with the file name", err)
			}
		})
	}
}

func TestLoadConfigFileNamesAMissingFile(t *testing.T) {
	_, err := LoadConfigFile("testdata/no-such-file.yaml")
	var fe *FileError
	if !errors.As(err, &fe) || fe.File != "testdata/no-such-file.yaml" || !strings.Contains(fe.Msg, "no such file") {
		t.Fatalf("error %v", err)
	}
}

func TestFileErrorFormat(t *testing.T) {
	for _, c := range []struct {
		e    FileError
		want string
	}{
		{FileError{File: "a.yaml", Line: 3, Column: 7, Key: "relay", Msg: "bad"}, "a.yaml:3:7: relay: bad"},
		{FileError{File: "a.yaml", Line: 3, Msg: "YAML syntax: bad"}, "a.yaml:3: YAML syntax: bad"},
		{FileError{File: "a.yaml", Msg: "permission denied"}, "a.yaml: permission denied"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// lines keeps the lines of s with the given numbers, from 1.
func lines(s string, keep ...int) string {
	all := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, n := range keep {
		b.WriteString(all[n-1])
	}
	return b.String()
}

// replace puts text in place of line n of s, counted from 1.
func replace(s string, n int, text string) string {
	all := strings.SplitAfter(s, "\n")
	all[n-1] = text + "\n"
	return strings.Join(all, "")
}

func TestConfigFileReadsTheRelayCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "relay-ca.pem")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}
	if err := os.WriteFile(ca, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := ParseConfigFile("alerts.yaml", []byte(baseFile+"relay_tls: {ca_file: "+ca+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tc := fc.Service.TLSConfig; tc == nil || tc.RootCAs == nil || tc.ServerName != "" {
		t.Fatalf("relay TLS config %+v", tc)
	}
}
