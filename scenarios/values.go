package scenarios

import (
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Node-level readers: each takes the value node of a key (nil when the key
// is absent, which returns the zero value without an error) and the key's
// name for messages.

// identPattern is what NATS subjects and episode ids can carry safely.
var identPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// check records an error at n when ok is false.
func (p *parser) check(n *yaml.Node, ok bool, format string, args ...any) {
	if !ok {
		p.failf(n, format, args...)
	}
}

// read applies a text parser to a scalar node.
func read[T any](p *parser, n *yaml.Node, what string, parse func(string) (T, error)) (T, bool) {
	var zero T
	s, ok := p.scalar(n, what)
	if !ok {
		return zero, false
	}
	v, err := parse(s)
	if err != nil {
		p.failf(n, "%s: %v", what, err)
		return zero, false
	}
	return v, true
}

func (p *parser) text(n *yaml.Node, what string) string {
	s, _ := p.scalar(n, what)
	return s
}

// ident reads a name that ends up in NATS subjects: cluster and node names.
func (p *parser) ident(n *yaml.Node, what string) string {
	s, ok := p.scalar(n, what)
	p.check(n, !ok || identPattern.MatchString(s),
		"%s %q may hold only letters, digits, - and _ (it becomes part of NATS subjects)", what, s)
	return s
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	s, ok := p.scalar(n, what)
	if !ok {
		return false
	}
	p.check(n, p.deref(n).ShortTag() == "!!bool", "%s must be true or false, not %q", what, s)
	return strings.EqualFold(s, "true")
}

// whole reads an integer of at least min.
func (p *parser) whole(n *yaml.Node, what string, min int) int {
	v, ok := read(p, n, what, parseInt)
	p.check(n, !ok || v >= min, "%s must be at least %d, not %d", what, min, v)
	return v
}

// positive reads a number above 0 (weights).
func (p *parser) positive(n *yaml.Node, what string) float64 {
	v, ok := read(p, n, what, parseReal)
	p.check(n, !ok || v > 0, "%s must be more than 0, not %g", what, v)
	return v
}

// share reads a number from 0 to 1 (invalid, tempfailed_max).
func (p *parser) share(n *yaml.Node, what string) float64 {
	v, ok := read(p, n, what, parseReal)
	p.check(n, !ok || (v >= 0 && v <= 1),
		"%s must be from 0 to 1 (a share, 0.05 = 5%%), not %g", what, v)
	return v
}

// duration reads a duration above 0, or at least 0 with zeroOK.
func (p *parser) duration(n *yaml.Node, what string, zeroOK bool) time.Duration {
	d, ok := read(p, n, what, parseDuration)
	switch {
	case !ok:
	case zeroOK && d < 0:
		p.failf(n, "%s must not be negative, not %v", what, d)
	case !zeroOK && d <= 0:
		p.failf(n, "%s must be longer than 0, not %v", what, d)
	}
	return d
}

// optDuration is duration for optional settings kept as pointers.
func (p *parser) optDuration(n *yaml.Node, what string, zeroOK bool) *time.Duration {
	if n == nil {
		return nil
	}
	d := p.duration(n, what, zeroOK)
	return &d
}

func (p *parser) optWhole(n *yaml.Node, what string, min int) *int {
	if n == nil {
		return nil
	}
	v := p.whole(n, what, min)
	return &v
}

// rate reads an arrival rate in sessions per second, at least 0.
func (p *parser) rate(n *yaml.Node, what string) float64 {
	r, ok := read(p, n, what, parseRate)
	p.check(n, !ok || r >= 0, "%s must not be negative, not %g/s", what, r)
	return r
}

// intRange reads "3" or "1..3" with both ends at least min.
func (p *parser) intRange(n *yaml.Node, what string, min int, def IntRange) IntRange {
	if n == nil {
		return def
	}
	r, ok := read(p, n, what, func(s string) (IntRange, error) {
		lo, hi, err := parseRange(s, parseInt)
		return IntRange{Min: lo, Max: hi}, err
	})
	p.check(n, !ok || r.Min >= min, "%s must be at least %d, not %d", what, min, r.Min)
	return r
}

// sizeRange reads "2KiB" or "2KiB..40KiB", in bytes, above 0.
func (p *parser) sizeRange(n *yaml.Node, what string, def FloatRange) FloatRange {
	if n == nil {
		return def
	}
	r, ok := read(p, n, what, func(s string) (FloatRange, error) {
		lo, hi, err := parseRange(s, parseSize)
		return FloatRange{Min: lo, Max: hi}, err
	})
	p.check(n, !ok || r.Min > 0, "%s must be more than 0B", what)
	return r
}

// durRange reads "60s" or "2s..6s", above 0.
func (p *parser) durRange(n *yaml.Node, what string) *DurRange {
	if n == nil {
		return nil
	}
	r, ok := read(p, n, what, func(s string) (DurRange, error) {
		lo, hi, err := parseRange(s, parseDuration)
		return DurRange{Min: lo, Max: hi}, err
	})
	p.check(n, !ok || r.Min > 0, "%s must be longer than 0, not %v", what, r.Min)
	return &r
}
