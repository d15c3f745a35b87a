package scenarios

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultSeed is the seed of a scenario file without `seed:`. A fixed value,
// not the time, so that two replays of one file draw the same sessions.
const DefaultSeed = 1

var scenarioKeys = []string{
	"name", "description", "seed", "mta", "models", "topology", "profiles", "phases", "expect",
}

// Parse parses and validates a scenario. file names it in errors and in
// Scenario.File; cat resolves model names (nil means DefaultCatalog). It
// stops at the first problem and returns it as an *Error.
func Parse(file string, data []byte, cat *Catalog) (*Scenario, error) {
	if cat == nil {
		cat = DefaultCatalog()
	}
	p := &parser{file: file}
	s := p.scenario(p.document(data), cat)
	if p.err != nil {
		return nil, p.err
	}
	s.File = file
	return s, nil
}

// scenario reads the top level. The order of the steps matters: profiles
// before the phases that name them, topology before the expectations that
// name its nodes.
func (p *parser) scenario(root *yaml.Node, cat *Catalog) *Scenario {
	o := p.object(root, "the scenario", scenarioKeys)
	s := &Scenario{Seed: DefaultSeed}
	s.Name = p.text(p.need(o, "name", "name: spam-burst"), "name")
	p.check(o.get("name"), strings.TrimSpace(s.Name) != "",
		"name is empty; give the scenario a name like spam-burst")
	s.Description = p.text(o.get("description"), "description")
	if n := o.get("seed"); n != nil {
		s.Seed, _ = read(p, n, "seed", parseWhole)
	}
	s.MTA = p.mta(o.get("mta"))
	s.Models = p.modelOverrides(o.get("models"), cat)
	s.Topology = p.topology(p.need(o, "topology", "topology: {cluster: edge, nodes: [...]}"),
		cat.WithOverrides(s.Models))
	s.Profiles = p.profiles(p.need(o, "profiles", "profiles: {normal: {messages: 1}}"))
	s.Phases = p.phases(p.need(o, "phases", "phases: [{name: baseline, duration: 10s, ...}]"),
		s.Profiles)
	s.Expect = p.expectations(o.get("expect"), s.Topology)
	return s
}

var mtaKeys = []string{"slot_wait", "wait_max", "cooldown", "client_cap", "stress_timeout"}

// mta reads the overrides of MTA settings. cooldown may be 0s (the MTA then
// leaves stress at the first free slot) and wait_max 0 (nobody waits);
// the others must be above 0.
func (p *parser) mta(n *yaml.Node) MTAOverrides {
	o := p.object(n, "mta", mtaKeys)
	return MTAOverrides{
		SlotWait:      p.optDuration(o.get("slot_wait"), "slot_wait", false),
		Cooldown:      p.optDuration(o.get("cooldown"), "cooldown", true),
		StressTimeout: p.optDuration(o.get("stress_timeout"), "stress_timeout", false),
		WaitMax:       p.optWhole(o.get("wait_max"), "wait_max", 0),
		ClientCap:     p.optWhole(o.get("client_cap"), "client_cap", 1),
	}
}

// modelOverrides reads `models: {T10: 12}`. Only catalog models can be
// overridden, and the result must stay smallest first, or "the next model"
// would stop meaning a bigger one.
func (p *parser) modelOverrides(n *yaml.Node, cat *Catalog) map[string]int {
	o := p.object(n, "models", nil)
	if len(o.order) == 0 {
		return nil
	}
	limits := make(map[string]int, len(o.order))
	for _, name := range o.order {
		_, known := cat.Lookup(name)
		p.check(o.keys[name], known,
			"model %q is not in the catalog, so it cannot be overridden; known models: %s",
			name, strings.Join(cat.Names(), ", "))
		limits[name] = p.whole(o.vals[name], "the limit of "+name, 1)
	}
	p.checkOrder(o, cat.WithOverrides(limits))
	return limits
}

// checkOrder reports the first override that breaks the increasing order.
func (p *parser) checkOrder(o *object, c *Catalog) {
	for i := 1; i < len(c.Models) && p.err == nil; i++ {
		lo, hi := c.Models[i-1], c.Models[i]
		if lo.ProcessLimit < hi.ProcessLimit {
			continue
		}
		at := o.vals[hi.Name]
		if at == nil {
			at = o.vals[lo.Name]
		}
		p.failf(at, "%s: %d and %s: %d break the catalog's order; "+
			"a model's limit must stay above the one before it",
			lo.Name, lo.ProcessLimit, hi.Name, hi.ProcessLimit)
	}
}
