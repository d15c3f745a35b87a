package yamldoc

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Walker reads a document's mappings into settings. It keeps the first problem only: what
// follows a mistake is read against half-set values and would be noise. Once a problem is
// recorded, Document, Mapping and Fail do nothing more, so that a caller can go on to the end
// and look at Err once. A Walker with File set is ready to use.
type Walker struct {
	// File is named in every error.
	File string

	err    *Error
	values map[string]*yaml.Node
}

// Setting is one key of a mapping and how its value is read.
type Setting struct {
	Key string
	// Read reads n, the key's value (an alias followed, never null); path is the dotted key,
	// for errors.
	Read func(w *Walker, path string, n *yaml.Node)
}

// Into is the setting that reads key's value with parse into dst. An error of parse is
// recorded with FailErr, and dst keeps what it held.
func Into[T any](key string, dst *T, parse func(*yaml.Node) (T, error)) Setting {
	return Setting{Key: key, Read: func(w *Walker, path string, n *yaml.Node) {
		v, err := parse(n)
		if err != nil {
			w.FailErr(n, path, err)
			return
		}
		*dst = v
	}}
}

// Block is the setting whose value is a mapping of its own settings. They are asked for only
// when the key is given, so that the caller can make what they fill in then.
func Block(key string, settings func() []Setting) Setting {
	return Setting{Key: key, Read: func(w *Walker, path string, n *yaml.Node) {
		w.Mapping(n, path, settings())
	}}
}

// Err is the first problem recorded, or nil. It is an *Error rather than an error so that a
// caller can convert it to its own type; compare it with nil before returning it as an error.
func (w *Walker) Err() *Error { return w.err }

// Values holds the value node of each key read so far, by dotted path ("nats.urls"): what a
// check made after the walk points at. The map is the Walker's own, not a copy.
func (w *Walker) Values() map[string]*yaml.Node {
	if w.values == nil {
		w.values = map[string]*yaml.Node{}
	}
	return w.values
}

// Files checks that the values of keys that were given name files that exist, so that a check
// of the config finds a missing file before the program would, long after its start.
func (w *Walker) Files(keys ...string) {
	for _, k := range keys {
		n := w.Values()[k]
		if n == nil || w.err != nil {
			continue
		}
		st, err := os.Stat(n.Value)
		switch {
		case err != nil:
			w.Fail(n, k, "%v", err)
		case st.IsDir():
			w.Fail(n, k, "%s is a directory, not a file", n.Value)
		}
	}
}

// NATSFiles are the keys of files in a "nats" block of events.ConnConfig settings.
var NATSFiles = []string{"nats.nkey_file", "nats.creds_file", "nats.tls.ca_file", "nats.tls.cert_file", "nats.tls.key_file"}

// Fail records a problem of key at n (nil: at no position), unless one is recorded already.
func (w *Walker) Fail(n *yaml.Node, key, format string, a ...any) {
	if w.err != nil {
		return
	}
	w.err = &Error{File: w.File, Key: key, Msg: fmt.Sprintf(format, a...)}
	if n != nil {
		w.err.Line, w.err.Column = n.Line, n.Column
	}
}

// FailErr records err, a value reader's verdict on key's value n, at the node inside n that
// err names when it was made by At.
func (w *Walker) FailErr(n *yaml.Node, key string, err error) {
	w.Fail(NodeOf(err, n), key, "%s", err.Error())
}

// Document parses data as the file's one document (see Parse) and returns its top-level
// node, or nil with the problem recorded. what names what the file configures ("one node").
func (w *Walker) Document(data []byte, what string) *yaml.Node {
	if w.err != nil {
		return nil
	}
	n, err := parse(data, what)
	if err != nil {
		err.File = w.File
		w.err = err
	}
	return n
}

// Mapping reads n, a mapping, into settings: every key must be one of theirs, given once and
// with a value. prefix is n's dotted key, "" at the top of the file.
func (w *Walker) Mapping(n *yaml.Node, prefix string, settings []Setting) {
	if w.err != nil {
		return
	}
	n = Deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		what := prefix
		if what == "" {
			what = "the file"
		}
		w.Fail(n, prefix, "%s must be a mapping of keys (key: value), not %s", what, Describe(n))
		return
	}
	byKey := make(map[string]Setting, len(settings))
	for _, s := range settings {
		byKey[s.Key] = s
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content) && w.err == nil; i += 2 {
		k, v := Deref(n.Content[i]), Deref(n.Content[i+1])
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		s, known := byKey[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			w.Fail(k, prefix, "a key must be a plain name, not %s", Describe(k))
		case !known:
			w.Fail(k, path, "unknown key%s", w.hint(k.Value, prefix, settings))
		case seen[k.Value] != nil:
			w.Fail(k, path, "given twice (first on line %d)", seen[k.Value].Line)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			w.Fail(k, path, "has no value; give one or remove the key")
		default:
			seen[k.Value] = k
			w.Values()[path] = v
			s.Read(w, path, v)
		}
	}
}

// hint is what the error for the unknown key adds: the key it was likely meant to be, when one
// is close enough to be a typo, else every key known where it stands.
func (w *Walker) hint(key, prefix string, settings []Setting) string {
	best, bestDist := "", 3
	for _, s := range settings {
		if d := editDistance(key, s.Key); d < bestDist {
			best, bestDist = s.Key, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.Key
	}
	slices.Sort(names)
	where := "at the top"
	if prefix != "" {
		where = "in " + prefix
	}
	return fmt.Sprintf("; known keys %s: %s", where, strings.Join(names, ", "))
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
