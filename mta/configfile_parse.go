package mta

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/mtastress/mtastress/yamldoc"
)

// fileParser walks a configuration file's yaml.Node tree. It keeps the first error only: what
// follows a mistake is read against half-set values and would be noise.
type fileParser struct {
	file string
	err  *FileError
	vals map[string]*yaml.Node // value node of each key seen, by dotted path
}

// nodeError is a value's problem at a node inside it (a list item, a map key).
type nodeError struct {
	n   *yaml.Node
	msg string
}

func (e *nodeError) Error() string { return e.msg }

func errAt(n *yaml.Node, format string, a ...any) error {
	return &nodeError{n: n, msg: fmt.Sprintf(format, a...)}
}

// fail records an error at n for key, unless one is recorded already.
func (p *fileParser) fail(n *yaml.Node, key, format string, a ...any) {
	if p.err != nil {
		return
	}
	p.err = &FileError{File: p.file, Key: key, Msg: fmt.Sprintf(format, a...)}
	if n != nil {
		p.err.Line, p.err.Column = n.Line, n.Column
	}
}

// failErr records err of key's value n, at the inner node the error names if it does.
func (p *fileParser) failErr(n *yaml.Node, key string, err error) {
	var ne *nodeError
	if errors.As(err, &ne) && ne.n != nil {
		n = ne.n
	}
	p.fail(n, key, "%s", err.Error())
}

// document parses data as one YAML document and returns its top-level node.
func (p *fileParser) document(data []byte) *yaml.Node {
	n, err := yamldoc.Parse(data, "one node")
	if err != nil {
		p.fail(&yaml.Node{Line: err.Line, Column: err.Column}, "", "%s", err.Msg)
	}
	return n
}

// mapping reads n, a mapping, into the settings; prefix names it in errors ("" at the top).
func (p *fileParser) mapping(n *yaml.Node, prefix string, settings []setting) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		what := prefix
		if what == "" {
			what = "the file"
		}
		p.fail(n, prefix, "%s must be a mapping of keys (key: value), not %s", what, describe(n))
		return
	}
	byKey := make(map[string]setting, len(settings))
	for _, s := range settings {
		byKey[s.key] = s
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		s, ok := byKey[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.fail(k, prefix, "a key must be a plain name, not %s", describe(k))
		case !ok:
			p.fail(k, path, "unknown key%s", suggest(k.Value, settings))
		case seen[k.Value] != nil:
			p.fail(k, path, "given twice (first on line %d)", seen[k.Value].Line)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			p.fail(k, path, "has no value; give one or remove the key")
		default:
			seen[k.Value] = k
			p.vals[path] = v
			s.read(p, path, v)
		}
	}
}

// deref follows an alias to its anchor; anchors are handy for a list shared by two keys.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an empty value"
}

// suggest names the known key closest to an unknown one, when it is a likely typo.
func suggest(key string, settings []setting) string {
	best, bestDist := "", 3
	for _, s := range settings {
		if d := editDistance(key, s.key); d < bestDist {
			best, bestDist = s.key, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance of two short ASCII strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
