package mta

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// setting is one key of the configuration file: how its value is read into the FileConfig,
// what it is now (for reload diffs), and whether SIGHUP applies it.
type setting struct {
	key    string
	read   func(p *fileParser, path string, n *yaml.Node) // path: the dotted key, for errors
	value  func() any
	reload bool
	// show, if set, is the value fit for the log (secrets redacted); value otherwise.
	show func() any
}

// opt is a setting read by parse into dst.
func opt[T any](key string, dst *T, parse func(*yaml.Node) (T, error)) setting {
	return setting{
		key: key,
		read: func(p *fileParser, path string, n *yaml.Node) {
			v, err := parse(n)
			if err != nil {
				p.failErr(n, path, err)
				return
			}
			*dst = v
		},
		value: func() any { return *dst },
	}
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
		opt("model", &c.Model, parseString),
		opt("hostname", &c.Hostname, parseHostname),
		opt("listen", &fc.Listen, listOf(parseHostPort, true)),
		opt("listen_exempt", &fc.ListenExempt, listOf(parseHostPort, false)),
		opt("listen_proxy", &fc.ListenProxy, listOf(parseHostPort, false)),
		opt("proxy_from", &c.ProxyFrom, listOf(parsePrefix, false)),
		reloadable(opt("tls_cert_file", &c.TLSCertFile, parseString)),
		reloadable(opt("tls_key_file", &c.TLSKeyFile, parseString)),
		reloadable(opt("domains", &c.Domains, listOf(parseDomain, false))),
		reloadable(opt("users", &c.Users, listOf(parseLocalPart, false))),
		reloadable(fc.usersFileSetting()),
		reloadable(opt("relay_networks", &c.RelayNetworks, listOf(parsePrefix, false))),
		reloadable(opt("relay", &c.Relay, parseHostPort)),
		reloadable(transportsSetting(c)),
		reloadable(rateLimitsSetting(&c.RateLimits)),
		opt("spool", &c.SpoolDir, parseString),
		opt("spool_max_bytes", &c.SpoolMaxBytes, parseSize(0)),
		opt("min_free_bytes", &c.MinFreeBytes, parseSize(0)),
		fc.natsSetting(),
		opt("metrics", &fc.Metrics, parseHostPort),
		opt("shutdown_timeout", &fc.ShutdownTimeout, parseDuration(time.Nanosecond)),

		opt("slot_wait", &c.SlotWait, parseDuration(time.Nanosecond)),
		derived(opt("wait_max", &c.WaitMax, parseCount(0)), &c.WaitMax, "4 × limit"),
		opt("cooldown", &c.Cooldown, parseDuration(0)),
		derived(opt("client_cap", &c.ClientCap, parseCount(0)), &c.ClientCap, "limit / 2"),
		opt("command_timeout", &c.CommandTimeout, parseDuration(time.Nanosecond)),
		opt("stress_command_timeout", &c.StressCommandTimeout, parseDuration(time.Nanosecond)),
		opt("min_data_rate", &c.MinDataRate, parseCount(0)),
		opt("hard_error_limit", &c.HardErrorLimit, parseCount(1)),
		opt("stress_hard_error_limit", &c.StressHardErrorLimit, parseCount(1)),
		opt("junk_limit", &c.JunkLimit, parseCount(0)),
		opt("stress_junk_limit", &c.StressJunkLimit, parseCount(0)),

		opt("max_message_bytes", &c.MaxMessageBytes, parseSize(1)),
		opt("max_recipients", &c.MaxRecipients, parseCount(1)),
		opt("delivery_workers", &c.DeliveryWorkers, parseCount(1)),
		opt("delivery_timeout", &c.DeliveryTimeout, parseDuration(time.Nanosecond)),
		opt("retry_min", &c.RetryMin, parseDuration(time.Nanosecond)),
		opt("retry_max", &c.RetryMax, parseDuration(time.Nanosecond)),
		opt("give_up", &c.GiveUp, parseDuration(time.Nanosecond)),
		opt("sample_interval", &c.SampleInterval, parseDuration(time.Nanosecond)),
	}
}

// rateLimitsSetting reads the rate_limits block.
func rateLimitsSetting(r *RateLimits) setting {
	return setting{
		key: "rate_limits",
		read: func(p *fileParser, path string, n *yaml.Node) {
			p.mapping(n, path, []setting{
				opt("connections_per_minute", &r.ConnectionsPerMinute, parseCount(0)),
				opt("messages_per_minute", &r.MessagesPerMinute, parseCount(0)),
				opt("recipients_per_minute", &r.RecipientsPerMinute, parseCount(0)),
				opt("exempt", &r.Exempt, listOf(parsePrefix, false)),
			})
		},
		value: func() any { return *r },
	}
}

// usersFileSetting's value includes the users read, so that a reload notices an edit of the
// users file as well as a new name.
func (fc *FileConfig) usersFileSetting() setting {
	s := opt("users_file", &fc.UsersFile, parseString)
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
		read: func(p *fileParser, path string, n *yaml.Node) {
			nc := &NATSConfig{StreamReplicas: 1}
			p.mapping(n, path, nc.settings())
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

func (nc *NATSConfig) settings() []setting {
	c, t := &nc.ConnConfig, &nc.ConnConfig.TLS
	return []setting{
		opt("urls", &c.URLs, listOf(parseString, true)),
		opt("name", &c.Name, parseString),
		opt("user", &c.User, parseString),
		opt("password", &c.Password, parseString),
		opt("token", &c.Token, parseString),
		opt("nkey_file", &c.NKeyFile, parseString),
		opt("creds_file", &c.CredsFile, parseString),
		{key: "tls", read: func(p *fileParser, path string, n *yaml.Node) {
			p.mapping(n, path, []setting{
				opt("ca_file", &t.CAFile, parseString),
				opt("cert_file", &t.CertFile, parseString),
				opt("key_file", &t.KeyFile, parseString),
				opt("required", &t.Required, parseBool),
			})
		}, value: func() any { return *t }},
		opt("stream_replicas", &nc.StreamReplicas, parseCount(1)),
		opt("state_dir", &nc.StateDir, parseString),
	}
}
