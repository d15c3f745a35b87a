package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits that keep a hostile or mistaken file from costing more than a
// scenario is worth; real scenarios are a few kilobytes.
const (
	maxFileSize = 1 << 20
	maxAliases  = 10000
)

// parser walks yaml.Node trees itself, instead of decoding into structs, so
// that every error can name the line and column of the offending node.
//
// It keeps the first error and ignores later ones ("sticky error"): once
// something is wrong, what follows is parsed against zero values and would
// only produce noise. Helpers therefore never need an error return.
type parser struct {
	file    string
	err     *Error
	aliases int
}

// failf records an error at n unless one is already recorded.
func (p *parser) failf(n *yaml.Node, format string, args ...any) {
	if p.err != nil {
		return
	}
	e := &Error{File: p.file, Line: 1, Msg: fmt.Sprintf(format, args...)}
	if n != nil && n.Line > 0 {
		e.Line, e.Column = n.Line, n.Column
	}
	p.err = e
}

// deref follows an alias to its anchor. Aliases are allowed (sharing a mix
// between phases is handy) but counted, so that a file cannot make the walk
// revisit one big anchor without bound.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.AliasNode {
		return n
	}
	p.aliases++
	if p.aliases > maxAliases {
		p.failf(n, "more than %d aliases; write the values out", maxAliases)
		return nil
	}
	return n.Alias
}

// document parses data as exactly one YAML document and returns its root.
func (p *parser) document(data []byte) *yaml.Node {
	if len(data) > maxFileSize {
		p.failf(nil, "file is %d bytes; at most %d are accepted", len(data), maxFileSize)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.failf(nil, "file is empty")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.failf(&extra, "a second YAML document (---) follows; one file holds one scenario")
		return nil
	case !errors.Is(err, io.EOF):
		p.yamlError(err)
		return nil
	}
	if len(doc.Content) != 1 {
		p.failf(&doc, "file is empty")
		return nil
	}
	return doc.Content[0]
}

var yamlLine = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of go.yaml.in/yaml/v3's parser (as opposed
// to its scanner). v3.0.6 makes only scanner lines 1-based (go-yaml PR #319)
// and reports parser lines 0-based, with no "line" at all on the first line.
// TODO: drop this table once the library reports 1-based lines throughout;
// TestBadFiles/yaml-syntax will fail when it does.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlError turns a syntax error of the YAML library, which carries at most
// a line number inside its text (no column), into an *Error.
func (p *parser) yamlError(err error) {
	msg, line := err.Error(), 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if slices.Contains(parserProblems, msg) {
		line++
	}
	line = max(line, 1)
	msg = strings.TrimPrefix(msg, "yaml: ")
	p.failf(&yaml.Node{Line: line}, "YAML syntax: %s", msg)
}

// object is a checked YAML mapping: keys unique, plain and (when a list of
// allowed keys is given) known.
type object struct {
	node  *yaml.Node
	what  string
	order []string
	keys  map[string]*yaml.Node
	vals  map[string]*yaml.Node
}

// object checks that n is a mapping. A nil n (key absent) gives an empty
// object and no error; allowed == nil accepts any key (profile names, mix).
func (p *parser) object(n *yaml.Node, what string, allowed []string) *object {
	o := &object{what: what, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	n = p.deref(n)
	if n == nil {
		return o
	}
	o.node = n
	if n.Kind != yaml.MappingNode {
		p.failf(n, "%s must be a mapping (key: value), not %s", what, describe(n))
		return o
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		p.objectKey(o, p.deref(n.Content[i]), n.Content[i+1], allowed)
	}
	return o
}

func (p *parser) objectKey(o *object, k, v *yaml.Node, allowed []string) {
	switch {
	case k == nil:
		return
	case k.Kind != yaml.ScalarNode:
		p.failf(k, "keys of %s must be plain names, not %s", o.what, describe(k))
		return
	case o.keys[k.Value] != nil:
		p.failf(k, "duplicate key %q in %s (first at line %d); keep one",
			k.Value, o.what, o.keys[k.Value].Line)
		return
	case allowed != nil && !slices.Contains(allowed, k.Value):
		p.failf(k, "unknown key %q in %s; allowed keys: %s",
			k.Value, o.what, strings.Join(allowed, ", "))
		return
	}
	o.order = append(o.order, k.Value)
	o.keys[k.Value] = k
	o.vals[k.Value] = v
}

// get returns the value of key, nil if absent.
func (o *object) get(key string) *yaml.Node { return o.vals[key] }

// need returns the value of key and records an error if it is absent.
func (p *parser) need(o *object, key, example string) *yaml.Node {
	v := o.vals[key]
	if v == nil && o.node != nil {
		p.failf(o.node, "%s needs %s, e.g. %s", o.what, key, example)
	}
	return v
}

// list checks that n is a sequence and returns its items, aliases followed.
func (p *parser) list(n *yaml.Node, what string) []*yaml.Node {
	n = p.deref(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.failf(n, "%s must be a list (one \"- item\" per line), not %s", what, describe(n))
		return nil
	}
	items := make([]*yaml.Node, 0, len(n.Content))
	for _, it := range n.Content {
		items = append(items, p.deref(it))
	}
	return items
}

// scalar returns the text of a single value. ok is false when n is absent
// or not a usable scalar (the latter is recorded as an error).
func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	n = p.deref(n)
	switch {
	case n == nil:
		return "", false
	case n.Kind != yaml.ScalarNode:
		p.failf(n, "%s must be a single value, not %s", what, describe(n))
		return "", false
	case n.ShortTag() == "!!null":
		p.failf(n, "%s has no value; write one or remove the key", what)
		return "", false
	}
	return n.Value, true
}

// describe names what a node is, for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this"
}
