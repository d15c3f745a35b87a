package mta

import (
	"go.yaml.in/yaml/v3"

	"github.com/mtastress/mtastress/yamldoc"
)

// transportsSetting reads the transports block: recipient domain to next hop, either
// "host:port" or a mapping that also sets the hop's STARTTLS policy:
//
//	transports:
//	  example.org: mail.example.org:25
//	  bank.example: {hop: mx.bank.example:25, require_tls: true, verify: true}
//
// The policy belongs to the hop, so two domains that share a hop must agree on it.
func transportsSetting(c *Config) setting {
	return setting{
		key: "transports",
		read: func(w *yamldoc.Walker, path string, n *yaml.Node) {
			c.Transports, c.HopTLS = map[string]string{}, map[string]TLSPolicy{}
			if n.Kind != yaml.MappingNode {
				w.Fail(n, path, "must be a mapping of domain: host:port, not %s", yamldoc.Describe(n))
				return
			}
			owner := map[string]string{} // hop → the domain that set its policy
			for i := 0; i+1 < len(n.Content) && w.Err() == nil; i += 2 {
				readTransport(w, path, yamldoc.Deref(n.Content[i]), yamldoc.Deref(n.Content[i+1]), c, owner)
			}
		},
		value: func() any { return []any{c.Transports, c.HopTLS} },
	}
}

// readTransport reads one entry of transports into c.
func readTransport(w *yamldoc.Walker, path string, k, v *yaml.Node, c *Config, owner map[string]string) {
	d, err := parseDomain(k)
	if err != nil {
		w.FailErr(k, path, err)
		return
	}
	if _, dup := c.Transports[d]; dup {
		w.Fail(k, path, "domain %s given twice", d)
		return
	}
	entry := path + "." + d
	if v.Kind != yaml.MappingNode {
		hop, err := parseHostPort(v)
		if err != nil {
			w.Fail(v, path, "%s: %v", d, err)
		}
		c.Transports[d] = hop
		return
	}
	var hop string
	var pol TLSPolicy
	w.Mapping(v, entry, []yamldoc.Setting{
		yamldoc.Into("hop", &hop, parseHostPort),
		yamldoc.Into("require_tls", &pol.Require, yamldoc.Bool),
		yamldoc.Into("verify", &pol.Verify, yamldoc.Bool),
	})
	switch {
	case w.Err() != nil:
		return
	case hop == "":
		w.Fail(v, entry, "needs hop: host:port")
		return
	}
	c.Transports[d] = hop
	if prev, ok := c.HopTLS[hop]; ok && prev != pol {
		w.Fail(v, entry, "hop %s has another require_tls/verify under %s; a hop has one TLS policy", hop, owner[hop])
		return
	}
	if pol != (TLSPolicy{}) {
		c.HopTLS[hop], owner[hop] = pol, d
	}
}
