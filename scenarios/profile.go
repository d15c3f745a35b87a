package scenarios

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Profile defaults. A 2 KiB message is a short plain-text mail with its
// headers: small enough that size never dominates a load test unless the
// profile asks for it.
const (
	DefaultSize    = 2 << 10
	DefaultClients = 1000

	// maxClients is every address of 127.0.0.0/8 but the network and
	// broadcast ones.
	maxClients = 1<<24 - 2
)

var profileKeys = []string{
	"messages", "recipients", "size", "sender", "invalid", "clients", "hold", "drip", "pregreet",
}

// profiles reads the named profiles, in file order.
func (p *parser) profiles(n *yaml.Node) map[string]Profile {
	o := p.object(n, "profiles", nil)
	p.check(o.node, len(o.order) > 0,
		"profiles is empty; define at least one, e.g. normal: {messages: 1}")
	out := make(map[string]Profile, len(o.order))
	for _, name := range o.order {
		p.check(o.keys[name], strings.TrimSpace(name) != "", "a profile needs a name")
		out[name] = p.profile(name, o.vals[name])
	}
	return out
}

func (p *parser) profile(name string, n *yaml.Node) Profile {
	o := p.object(n, fmt.Sprintf("profile %q", name), profileKeys)
	pr := Profile{
		Name:       name,
		Messages:   p.intRange(o.get("messages"), "messages", 0, IntRange{1, 1}),
		Recipients: p.intRange(o.get("recipients"), "recipients", 1, IntRange{1, 1}),
		Size:       p.sizeRange(o.get("size"), "size", FloatRange{DefaultSize, DefaultSize}),
		Sender:     p.sender(o.get("sender")),
		Invalid:    p.share(o.get("invalid"), "invalid"),
		Clients:    DefaultClients,
		Hold:       p.durRange(o.get("hold"), "hold"),
		Pregreet:   p.boolean(o.get("pregreet"), "pregreet"),
	}
	if c := o.get("clients"); c != nil {
		pr.Clients = p.whole(c, "clients", 1)
		p.check(c, pr.Clients <= maxClients,
			"clients must be at most %d (the size of 127.0.0.0/8)", maxClients)
	}
	if d := o.get("drip"); d != nil {
		r, _ := read(p, d, "drip", parseDrip)
		pr.Drip = &r
	}
	return pr
}

// sender reads a sender address: "<>" for the null sender (bounces), or
// local@domain. Anything else would be refused by the MTA and make the
// scenario measure syntax errors instead of load.
func (p *parser) sender(n *yaml.Node) string {
	s, ok := p.scalar(n, "sender")
	if !ok || s == "<>" {
		return s
	}
	local, domain, found := strings.Cut(s, "@")
	p.check(n, found && local != "" && domain != "" && !strings.ContainsAny(s, " \t<>\"") &&
		!strings.Contains(domain, "@"),
		"sender %q is not an address; write user@example.net, \"<>\" for the null sender, "+
			"or leave it out for a random one", s)
	return s
}
