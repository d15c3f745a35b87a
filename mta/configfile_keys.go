package mta

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/mtastress/mtastress/yamldoc"
)

// setting is one top-level key of the configuration file: how the walker reads its value into
// the FileConfig, what it is now (for reload diffs), and whether SIGHUP applies it. The keys
// inside a block are plain yamldoc.Settings: reloads and the log see the block as one value.
type setting struct {
	key    string
	read   func(w *yamldoc.Walker, path string, n *yaml.Node)
	value  func() any
	reload bool
	// show, if set, is the value fit for the log (secrets redacted); value otherwise.
	show func() any
}

// fields are the settings as the walker reads them.
func fields(settings []setting) []yamldoc.Setting {
	out := make([]yamldoc.Setting, len(settings))
	for i, s := range settings {
		out[i] = yamldoc.Setting{Key: s.key, Read: s.read}
	}
	return out
}

// opt is a setting read by parse into dst.
func opt[T any](key string, dst *T, parse func(*yaml.Node) (T, error)) setting {
	read := yamldoc.Into(key, dst, parse).Read
	return setting{key: key, read: read, value: func() any { return *dst }}
}

// reloadable marks a setting that a reload applies without a restart.
func reloadable(s setting) setting {
	s.reload = true
	return s
}

// derived shows a count whose 0 means a value derived from the model's limit.
func derived(s setting, v *int, rule string) setting {
	s.show = func() any {
		if *v == 0 {
			return rule
		}
		return *v
	}
	return s
}

// settings lists every top-level key. The order is the effective-config log's.
func (fc *FileConfig) settings() []setting {
	c := &fc.MTA
	return []setting{
		opt("node", &c.Node, parseName),
		opt("cluster", &c.Cluster, parseName),
		opt("model", &c.Model, yamldoc.String),
		opt("hostname", &c.Hostname, parseHostname),
		opt("listen", &fc.Listen, yamldoc.NonEmptyList(parseHostPort)),
		opt("listen_exempt", &fc.ListenExempt, yamldoc.List(parseHostPort)),
		opt("listen_proxy", &fc.ListenProxy, yamldoc.List(parseHostPort)),
		opt("proxy_from", &c.ProxyFrom, yamldoc.List(parsePrefix)),
		reloadable(opt("tls_cert_file", &c.TLSCertFile, yamldoc.String)),
		reloadable(opt("tls_key_file", &c.TLSKeyFile, yamldoc.String)),
		reloadable(opt("domains", &c.Domains, yamldoc.List(parseDomain))),
		reloadable(opt("users", &c.Users, yamldoc.List(parseLocalPart))),
		reloadable(fc.usersFileSetting()),
		reloadable(opt("relay_networks", &c.RelayNetworks, yamldoc.List(parsePrefix))),
		reloadable(opt("relay", &c.Relay, parseHostPort)),
		reloadable(transportsSetting(c)),
		reloadable(rateLimitsSetting(&c.RateLimits)),
		opt("spool", &c.SpoolDir, yamldoc.String),
		opt("spool_max_bytes", &c.SpoolMaxBytes, parseSize(0)),
		opt("min_free_bytes", &c.MinFreeBytes, parseSize(0)),
		fc.natsSetting(),
		opt("metrics", &fc.Metrics, parseHostPort),
		opt("shutdown_timeout", &fc.ShutdownTimeout, positiveDuration),

		// Session limits: for sessions and waits that begin after a reload (tuning.go).
		reloadable(opt("slot_wait", &c.SlotWait, positiveDuration)),
		reloadable(derived(opt("wait_max", &c.WaitMax, parseCount(0)), &c.WaitMax, "4 × limit")),
		opt("cooldown", &c.Cooldown, yamldoc.MinDuration(0)),
		reloadable(derived(opt("client_cap", &c.ClientCap, parseCount(0)), &c.ClientCap, "limit / 2")),
		reloadable(opt("command_timeout", &c.CommandTimeout, positiveDuration)),
		reloadable(opt("stress_command_timeout", &c.StressCommandTimeout, positiveDuration)),
		reloadable(opt("min_data_rate", &c.MinDataRate, parseCount(0))),
		reloadable(opt("hard_error_limit", &c.HardErrorLimit, parseCount(1))),
		reloadable(opt("stress_hard_error_limit", &c.StressHardErrorLimit, parseCount(1))),
		reloadable(opt("junk_limit", &c.JunkLimit, parseCount(0))),
		reloadable(opt("stress_junk_limit", &c.StressJunkLimit, parseCount(0))),
		reloadable(opt("hopcount_limit", &c.HopcountLimit, parseCount(1))),

		opt("max_message_bytes", &c.MaxMessageBytes, parseSize(1)),
		opt("max_recipients", &c.MaxRecipients, parseCount(1)),
		opt("delivery_workers", &c.DeliveryWorkers, parseCount(1)),
		opt("delivery_timeout", &c.DeliveryTimeout, positiveDuration),
		opt("retry_min", &c.RetryMin, positiveDuration),
		opt("retry_max", &c.RetryMax, positiveDuration),
		opt("give_up", &c.GiveUp, positiveDuration),
		opt("sample_interval", &c.SampleInterval, positiveDuration),
	}
}

// rateLimitsSetting reads the rate_limits block.
func rateLimitsSetting(r *RateLimits) setting {
	return setting{
		key: "rate_limits",
		read: func(w *yamldoc.Walker, path string, n *yaml.Node) {
			w.Mapping(n, path, []yamldoc.Setting{
				yamldoc.Into("connections_per_minute", &r.ConnectionsPerMinute, parseCount(0)),
				yamldoc.Into("messages_per_minute", &r.MessagesPerMinute, parseCount(0)),
				yamldoc.Into("recipients_per_minute", &r.RecipientsPerMinute, parseCount(0)),
				yamldoc.Into("exempt", &r.Exempt, yamldoc.List(parsePrefix)),
			})
		},
		value: func() any { return *r },
	}
}

// usersFileSetting's value includes the users read, so that a reload notices an edit of the
// users file as well as a new name.
func (fc *FileConfig) usersFileSetting() setting {
	s := opt("users_file", &fc.UsersFile, yamldoc.String)
	s.value = func() any { return []any{fc.UsersFile, fc.fileUsers} }
	s.show = func() any { return fmt.Sprintf("%s (%d users)", fc.UsersFile, len(fc.fileUsers)) }
	if fc.UsersFile == "" {
		s.show = func() any { return "none" }
	}
	return s
}

// natsSetting reads the nats block; the log sees it with its secrets redacted.
func (fc *FileConfig) natsSetting() setting {
	return setting{
		key: "nats",
		read: func(w *yamldoc.Walker, path string, n *yaml.Node) {
			nc := &NATSConfig{StreamReplicas: 1}
			w.Mapping(n, path, nc.settings())
			fc.NATS = nc
		},
		value: func() any { return fc.NATS },
		show: func() any {
			if fc.NATS == nil {
				return "none: events are off"
			}
			r := *fc.NATS
			r.ConnConfig = r.Redacted()
			return r
		},
	}
}

func (nc *NATSConfig) settings() []yamldoc.Setting {
	c, t := &nc.ConnConfig, &nc.ConnConfig.TLS
	return []yamldoc.Setting{
		yamldoc.Into("urls", &c.URLs, yamldoc.NonEmptyList(yamldoc.String)),
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
		yamldoc.Into("stream_replicas", &nc.StreamReplicas, parseCount(1)),
		yamldoc.Into("state_dir", &nc.StateDir, yamldoc.String),
	}
}
