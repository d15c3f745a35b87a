package mta

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// baseConfig is a minimal valid file: the seven required keys, on lines 1 to 7.
const baseConfig = `node: edge-1
cluster: edge
model: T10
hostname: mx.example.test
listen: 127.0.0.1:0
spool: /var/spool/mtastress
relay: 127.0.0.1:2525
`

func TestExampleConfigFile(t *testing.T) {
	data, err := os.ReadFile("testdata/mta.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The file names a NATS CA file, which a check looks for; give it one.
	ca := filepath.Join(t.TempDir(), "nats-ca.pem")
	os.WriteFile(ca, nil, 0o600)
	fc, err := ParseConfigFile("testdata/mta.example.yaml", bytes.ReplaceAll(data, []byte("/etc/mtastress/nats-ca.pem"), []byte(ca)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fc.MTAConfig(100)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the example's config does not validate: %v", err)
	}
	switch {
	case cfg.Node != "edge-1" || cfg.Model != "T100" || cfg.Limit != 100:
		t.Errorf("node %q model %q limit %d", cfg.Node, cfg.Model, cfg.Limit)
	case cfg.MinFreeBytes != 1<<30 || cfg.MaxMessageBytes != 10<<20:
		t.Errorf("sizes: min free %d, max message %d", cfg.MinFreeBytes, cfg.MaxMessageBytes)
	case cfg.GiveUp != 120*time.Hour || cfg.StressCommandTimeout != 10*time.Second:
		t.Errorf("durations: give up %v, stress command timeout %v", cfg.GiveUp, cfg.StressCommandTimeout)
	case !slices.Equal(cfg.RelayNetworks, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}):
		t.Errorf("relay networks %v", cfg.RelayNetworks)
	case cfg.Transports["example.org"] != "mail.example.org:25":
		t.Errorf("transports %v", cfg.Transports)
	case fc.NATS == nil || fc.NATS.StreamReplicas != 3 || len(fc.NATS.URLs) != 2:
		t.Errorf("nats %+v", fc.NATS)
	case fc.Metrics != "127.0.0.1:9125" || fc.ShutdownTimeout != 30*time.Second:
		t.Errorf("metrics %q, shutdown timeout %v", fc.Metrics, fc.ShutdownTimeout)
	case cfg.RateLimits.ConnectionsPerMinute != 60 || cfg.RateLimits.RecipientsPerMinute != 500 || len(cfg.RateLimits.Exempt) != 1:
		t.Errorf("rate limits %+v", cfg.RateLimits)
	}

	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "config", fc)
	if strings.Contains(b.String(), "change-me") || !strings.Contains(b.String(), "REDACTED") {
		t.Errorf("the effective config leaks the NATS password or does not say it is redacted:\n%s", b.String())
	}
}

func TestConfigFileDefaults(t *testing.T) {
	fc, err := ParseConfigFile("mta.yaml", []byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultConfig()
	cfg := fc.MTAConfig(10)
	if cfg.SlotWait != def.SlotWait || cfg.RetryMax != def.RetryMax || cfg.MaxRecipients != def.MaxRecipients {
		t.Errorf("defaults not kept: %+v", cfg)
	}
	if fc.NATS != nil || fc.Metrics != "" || fc.ShutdownTimeout != DefaultShutdownTimeout {
		t.Errorf("optional parts: nats %v, metrics %q, shutdown timeout %v", fc.NATS, fc.Metrics, fc.ShutdownTimeout)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	badUsers := filepath.Join(dir, "users")
	if err := os.WriteFile(badUsers, []byte("user1\n# a comment\nuser2@example.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file  string
		pos, key    string
		msg         string
		notFromBase bool
	}{
		{name: "a misspelt key", file: "slot_wiat: 30s", pos: "8:1", key: "slot_wiat",
			msg: `unknown key; did you mean "slot_wait"?`},
		{name: "a duration without a unit", file: "slot_wait: 30", pos: "8:12", key: "slot_wait",
			msg: `"30" is not a Go duration: write it with a unit, as in "30s"`},
		{name: "a duration in days", file: "give_up: 5d", pos: "8:10", key: "give_up", msg: `no days: write hours, as in "120h"`},
		{name: "a negative cool-down", file: "cooldown: -1s", pos: "8:11", key: "cooldown", msg: "must not be negative"},
		{name: "a zero slot wait", file: "slot_wait: 0s", pos: "8:12", key: "slot_wait", msg: "must be positive"},
		{name: "retry max under retry min", file: "retry_min: 10m\nretry_max: 5m", pos: "9:12", key: "retry_max",
			msg: "5m0s is shorter than retry_min 10m0s"},
		{name: "a size in megabytes", file: "max_message_bytes: 10MB", pos: "8:20", key: "max_message_bytes",
			msg: `"10MB" is not a size`},
		{name: "a fraction for a count", file: "wait_max: 1.5", pos: "8:11", key: "wait_max", msg: `"1.5" is not a whole number`},
		{name: "a zero hard error limit", file: "hard_error_limit: 0", pos: "8:19", key: "hard_error_limit", msg: "must be at least 1"},
		{name: "a bad item in a list", file: "relay_networks: [10.0.0.0/8, nonsense]", pos: "8:30", key: "relay_networks",
			msg: `"nonsense" is not a network`},
		{name: "a transport without a port", file: "transports:\n  example.org: mail.example.org", pos: "9:16",
			key: "transports", msg: "example.org: \"mail.example.org\" is not host:port"},
		{name: "a transport for a bad domain", file: "transports:\n  exa_mple.org: h:25", pos: "9:3",
			key: "transports", msg: `"exa_mple.org" is not a domain name`},
		{name: "a key given twice", file: "node: edge-2", pos: "8:1", key: "node", msg: "given twice (first on line 1)"},
		{name: "a key without a value", file: "users:", pos: "8:1", key: "users", msg: "has no value"},
		{name: "a node name with a space", file: strings.Replace(baseConfig, "node: edge-1", "node: edge 1", 1),
			pos: "1:7", key: "node", msg: "edge 1", notFromBase: true},
		{name: "a list where one value belongs", file: "metrics: [a, b]", pos: "8:10", key: "metrics",
			msg: "must be a single value, not a list"},
		{name: "a mapping where a list belongs", file: strings.Replace(baseConfig, "listen: 127.0.0.1:0", "listen: {a: b}", 1),
			pos: "5:9", key: "listen",
			msg: "must be a list", notFromBase: true},
		{name: "a user with a domain", file: "users: [ok, bad@example.test]", pos: "8:13", key: "users",
			msg: "is not a local part"},
		{name: "a users file that is not there", file: "users_file: " + filepath.Join(dir, "missing"), pos: "8:13",
			key: "users_file", msg: "no such file"},
		{name: "a users file with an address", file: "users_file: " + badUsers, pos: "8:13", key: "users_file",
			msg: badUsers + ":3: \"user2@example.test\" is not a local part"},
		{name: "a negative rate limit", file: "rate_limits: {messages_per_minute: -1}", pos: "8:36",
			key: "rate_limits.messages_per_minute", msg: "must be at least 0"},
		{name: "a misspelt nats key", file: "nats:\n  urls: [nats://127.0.0.1:4222]\n  pasword: x", pos: "10:3",
			key: "nats.pasword", msg: `did you mean "password"?`},
		{name: "a nats url without a scheme", file: "nats: {urls: [127.0.0.1:4222]}", pos: "8:7", key: "nats",
			msg: "needs a scheme"},
		{name: "two nats credentials", file: "nats: {urls: [nats://h:4222], user: u, token: t}", pos: "8:7", key: "nats",
			msg: "set only one of"},
		{name: "event state inside the spool", file: "nats:\n  urls: [nats://h:4222]\n  state_dir: /var/spool/mtastress/ev",
			pos: "10:14", key: "nats.state_dir", msg: "is inside the spool"},
		{name: "a bad nats tls flag", file: "nats: {urls: [nats://h:4222], tls: {required: yes}}", pos: "8:47",
			key: "nats.tls.required", msg: `"yes" is not true or false`},
		{name: "a missing required key", file: strings.Replace(baseConfig, "relay: 127.0.0.1:2525\n", "", 1),
			pos: "1:1", key: "relay", msg: "is required", notFromBase: true},
		{name: "a list for the whole file", file: "- node: a\n- cluster: b\n", pos: "1:1", key: "",
			msg: "the file must be a mapping", notFromBase: true},
		{name: "an empty file", file: "", pos: "1:1", msg: "the file is empty", notFromBase: true},
		{name: "a second document", file: "---\nnode: x\n", pos: "8:1", msg: "a second YAML document"},
		// The YAML library names the line where the list opened.
		{name: "an unclosed flow list", file: "domains: [a.example, b.example\nrelay_networks: []\n", pos: "8",
			msg: "YAML syntax: did not find expected ',' or ']'"},
		{name: "a tab in the indentation", file: "transports:\n\texample.org: h:25\n", pos: "9",
			msg: "YAML syntax: found character that cannot start any token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.file
			if !tc.notFromBase {
				data = baseConfig + tc.file + "\n"
			}
			_, err := ParseConfigFile("mta.yaml", []byte(data))
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want a *FileError wrapping ErrInvalidConfig", err)
			}
			pos := fmt.Sprint(fe.Line)
			if fe.Column > 0 {
				pos += fmt.Sprintf(":%d", fe.Column)
			}
			if pos != tc.pos || fe.Key != tc.key || !strings.Contains(fe.Msg, tc.msg) {
				t.Fatalf("got %s (key %q), want %s (key %q) saying %q", err, fe.Key, tc.pos, tc.key, tc.msg)
			}
			if want := "mta.yaml:" + tc.pos + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestConfigFileChanges(t *testing.T) {
	old, err := ParseConfigFile("mta.yaml", []byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(baseConfig, "listen: 127.0.0.1:0", "listen: 127.0.0.1:2500", 1) +
		"domains: [example.test]\ncooldown: 5s\n"
	next, err := ParseConfigFile("mta.yaml", []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	reloaded, restart := old.Changes(next)
	if !slices.Equal(reloaded, []string{"domains"}) || !slices.Equal(restart, []string{"listen", "cooldown"}) {
		t.Fatalf("reloaded %v, restart %v; want [domains], [listen cooldown]", reloaded, restart)
	}
	// The running config takes the reloaded keys only, so the next reload still names the rest.
	running := old.WithReloaded(next)
	if reloaded, restart := running.Changes(next); len(reloaded) != 0 || len(restart) != 2 {
		t.Fatalf("after the reload: reloaded %v, restart %v", reloaded, restart)
	}

	t.Run("a reload takes every reloadable key", func(t *testing.T) {
		dir := t.TempDir()
		users := filepath.Join(dir, "users")
		os.WriteFile(users, []byte("user1\n"), 0o600)
		cert, key, _ := testCert(t, dir, "mx.example.test", 1)
		all, err := ParseConfigFile("mta.yaml", []byte(baseConfig+`domains: [example.test]
users: [u1]
users_file: `+users+`
tls_cert_file: `+cert+`
tls_key_file: `+key+`
relay_networks: [10.0.0.0/8]
transports: {example.org: "h:25", example.net: {hop: "h2:25", require_tls: true}}
rate_limits: {connections_per_minute: 5, messages_per_minute: 5, recipients_per_minute: 5, exempt: [10.0.0.0/8]}
slot_wait: 9s
wait_max: 7
client_cap: 3
command_timeout: 61s
stress_command_timeout: 9s
min_data_rate: 100
hard_error_limit: 5
stress_hard_error_limit: 2
junk_limit: 9
stress_junk_limit: 2
hopcount_limit: 30
`))
		if err != nil {
			t.Fatal(err)
		}
		if reloaded, _ := old.WithReloaded(all).Changes(all); len(reloaded) != 0 {
			t.Fatalf("WithReloaded left out %v", reloaded)
		}
		var want []string
		for _, s := range old.settings() {
			if s.reload {
				want = append(want, s.key)
			}
		}
		if reloaded, _ := old.Changes(all); len(reloaded) != len(want)-1 {
			// relay is the one reloadable key the edit leaves alone.
			t.Fatalf("reloaded %v, want all of %v but relay", reloaded, want)
		}
	})

	t.Run("a NATS password change is seen, though the log redacts it", func(t *testing.T) {
		a, _ := ParseConfigFile("mta.yaml", []byte(baseConfig+"nats: {urls: [nats://h:4222], user: u, password: one}\n"))
		b, _ := ParseConfigFile("mta.yaml", []byte(baseConfig+"nats: {urls: [nats://h:4222], user: u, password: two}\n"))
		if _, restart := a.Changes(b); !slices.Equal(restart, []string{"nats"}) {
			t.Fatalf("restart %v, want [nats]", restart)
		}
	})
}

func TestConfigFileErrorAt(t *testing.T) {
	fc, err := ParseConfigFile("mta.yaml", []byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	err = fc.ErrorAt("model", "unknown model %q", "T10")
	if got := err.Error(); got != `mta.yaml:3:8: model: unknown model "T10"` {
		t.Fatalf("got %q", got)
	}
}
