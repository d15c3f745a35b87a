package scenarios

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var phaseKeys = []string{"name", "duration", "rate", "ramp", "mix", "skip"}

// phases reads the phase list. At least one phase must send traffic, or
// there is nothing to replay.
func (p *parser) phases(n *yaml.Node, profiles map[string]Profile) []Phase {
	items := p.list(n, "phases")
	var out []Phase
	var total time.Duration
	live := 0
	names := map[string]bool{}
	for _, it := range items {
		ph, nameNode := p.phase(it, profiles)
		p.check(nameNode, !names[ph.Name],
			"phase %q is listed twice; phase names must be unique", ph.Name)
		names[ph.Name] = true
		total += ph.Duration
		p.check(it, total <= maxDuration, "the phases add up to more than 3650d")
		if !ph.Skip {
			live++
		}
		out = append(out, ph)
	}
	p.check(n, live > 0, "no phase sends traffic; add one like "+
		"{name: baseline, duration: 10s, rate: 2/s, mix: {normal: 1}}")
	return out
}

// phase reads one phase. A skip phase only advances the clock, so traffic
// keys there are errors rather than silently ignored.
func (p *parser) phase(n *yaml.Node, profiles map[string]Profile) (Phase, *yaml.Node) {
	o := p.object(n, "a phase", phaseKeys)
	nameNode := p.need(o, "name", "name: baseline")
	ph := Phase{
		Name:     p.text(nameNode, "phase name"),
		Duration: p.duration(p.need(o, "duration", "duration: 10s"), "duration", false),
		Skip:     p.boolean(o.get("skip"), "skip"),
	}
	p.check(nameNode, strings.TrimSpace(ph.Name) != "", "phase name is empty; name it, e.g. baseline")
	if ph.Skip {
		for _, k := range []string{"rate", "ramp", "mix"} {
			p.check(o.keys[k], o.get(k) == nil,
				"a skip phase sends no traffic, so it takes no %s; remove it", k)
		}
		return ph, nameNode
	}
	ph.Rate = p.rate(p.need(o, "rate", "rate: 2/s"), "rate")
	if r := o.get("ramp"); r != nil {
		ph.Ramp = p.duration(r, "ramp", false)
		p.check(r, ph.Ramp <= ph.Duration,
			"ramp %v is longer than the phase's duration %v; the ramp is the first part of the duration",
			ph.Ramp, ph.Duration)
	}
	ph.Mix = p.mix(o.get("mix"), o.node, profiles)
	return ph, nameNode
}

// mix reads profile weights and normalises them to sum to 1; weights are
// relative so that "spam: 9, normal: 1" and "spam: 0.9, normal: 0.1" agree.
func (p *parser) mix(n, phase *yaml.Node, profiles map[string]Profile) map[string]float64 {
	o := p.object(n, "mix", nil)
	if len(o.order) == 0 {
		at := n
		if at == nil {
			at = phase
		}
		p.failf(at, "mix is empty; a phase that sends traffic needs one, e.g. mix: {normal: 1}")
		return nil
	}
	mix := make(map[string]float64, len(o.order))
	sum := 0.0
	for _, name := range o.order {
		_, defined := profiles[name]
		p.check(o.keys[name], defined,
			"profile %q is not defined; defined profiles: %s", name, profileNames(profiles))
		mix[name] = p.positive(o.vals[name], fmt.Sprintf("mix weight of %s", name))
		sum += mix[name]
	}
	p.check(n, !math.IsInf(sum, 0),
		"mix weights are too large; use small relative numbers like 9 and 1")
	for name := range mix {
		mix[name] /= sum
	}
	return mix
}

func profileNames(profiles map[string]Profile) string {
	names := make([]string, 0, len(profiles))
	for name := range profiles {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
