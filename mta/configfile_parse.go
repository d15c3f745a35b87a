package mta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
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

// document parses data as one YAML document and returns its top-level mapping.
func (p *fileParser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.fail(&yaml.Node{Line: 1, Column: 1}, "", "the file is empty")
		} else {
			p.syntax(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.fail(&extra, "", "a second YAML document (---) follows; a file configures one node")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.syntax(err)
		return nil
	}
	if len(doc.Content) != 1 {
		p.fail(&yaml.Node{Line: 1, Column: 1}, "", "the file is empty")
		return nil
	}
	return doc.Content[0]
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a YAML syntax error, which carries a line but no column. The library's
// parser (not its scanner) counts lines from 0 in v3.0.6; its messages start "did not find
// expected" or "found" + a directive problem, and are moved one line down.
// TODO: drop the adjustment once go.yaml.in/yaml counts from 1 throughout; the "unclosed
// flow list" case of TestConfigFileErrors fails when it does.
func (p *fileParser) syntax(err error) {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 1
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if strings.HasPrefix(msg, "did not find expected") || strings.HasPrefix(msg, "found duplicate %") ||
			strings.HasPrefix(msg, "found incompatible") || strings.HasPrefix(msg, "found undefined tag") {
			line++
		}
	}
	p.fail(&yaml.Node{Line: max(line, 1)}, "", "YAML syntax: %s", msg)
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
