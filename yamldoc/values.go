package yamldoc

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Readers of single values, for Into and for a caller's own readers built on them. A plain
// error is about the value as a whole; one made by At is about a node inside it (a list item,
// a mapping's key), and FailErr puts the error's position there.

// String reads a single value that is not empty.
func String(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("must be a single value, not %s", Describe(n))
	}
	if n.Value == "" {
		return "", errors.New("must not be empty")
	}
	return n.Value, nil
}

// Bool reads true or false, and nothing else: YAML 1.1's yes, no, on and off are refused,
// since a reader cannot tell which one a file meant.
func Bool(n *yaml.Node) (bool, error) {
	s, err := String(n)
	if err != nil {
		return false, err
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// Int reads a whole number from min to max; max math.MaxInt leaves it unbounded above.
func Int(min, max int) func(*yaml.Node) (int, error) {
	return func(n *yaml.Node) (int, error) {
		s, err := String(n)
		if err != nil {
			return 0, err
		}
		v, err := strconv.Atoi(s)
		switch {
		case err != nil:
			return 0, fmt.Errorf("%q is not a whole number", s)
		case v >= min && v <= max:
			return v, nil
		case max == math.MaxInt:
			return 0, fmt.Errorf("must be at least %d, got %d", min, v)
		}
		return 0, fmt.Errorf("must be from %d to %d, got %d", min, max, v)
	}
}

// Duration reads a Go duration, of any sign; MinDuration also checks the bound.
func Duration(n *yaml.Node) (time.Duration, error) {
	s, err := String(n)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil && strings.HasSuffix(s, "d"):
		return 0, fmt.Errorf("%q is not a Go duration, which has no days: write hours, as in \"120h\"", s)
	case err != nil:
		return 0, fmt.Errorf("%q is not a Go duration: write it with a unit, as in \"30s\", \"5m\" or \"1h30m\"", s)
	}
	return d, nil
}

// MinDuration reads a Go duration of at least min, which is 0 or more.
func MinDuration(min time.Duration) func(*yaml.Node) (time.Duration, error) {
	return func(n *yaml.Node) (time.Duration, error) {
		d, err := Duration(n)
		switch {
		case err != nil:
			return 0, err
		case d < min && min > 0:
			return 0, fmt.Errorf("must be at least %v, got %v", min, d)
		case d < min:
			return 0, fmt.Errorf("must not be negative, got %v", d)
		}
		return d, nil
	}
}

// List reads a list of items, perhaps empty. A single value is a list of one, so that a file
// can say "listen: 127.0.0.1:25" where one will do.
func List[T any](item func(*yaml.Node) (T, error)) func(*yaml.Node) ([]T, error) {
	return list(item, false)
}

// NonEmptyList is List for a list that must have an item.
func NonEmptyList[T any](item func(*yaml.Node) (T, error)) func(*yaml.Node) ([]T, error) {
	return list(item, true)
}

func list[T any](item func(*yaml.Node) (T, error), need bool) func(*yaml.Node) ([]T, error) {
	return func(n *yaml.Node) ([]T, error) {
		items := []*yaml.Node{n}
		switch n.Kind {
		case yaml.SequenceNode:
			items = n.Content
		case yaml.MappingNode:
			return nil, errors.New("must be a list ([a, b] or one \"- item\" a line), not a mapping")
		}
		if need && len(items) == 0 {
			return nil, errors.New("must list at least one")
		}
		out := make([]T, 0, len(items))
		for _, it := range items {
			v, err := item(Deref(it))
			if err != nil {
				return nil, At(it, "%v", err)
			}
			out = append(out, v)
		}
		return out, nil
	}
}

// nodeError is a value's problem at a node inside it.
type nodeError struct {
	n   *yaml.Node
	msg string
}

func (e *nodeError) Error() string { return e.msg }

// At is an error about n, a node inside the value being read; FailErr and NodeOf find n again.
func At(n *yaml.Node, format string, a ...any) error {
	return &nodeError{n: n, msg: fmt.Sprintf(format, a...)}
}

// NodeOf is the node err was made At, or whole when err names none.
func NodeOf(err error, whole *yaml.Node) *yaml.Node {
	var ne *nodeError
	if errors.As(err, &ne) && ne.n != nil {
		return ne.n
	}
	return whole
}

// Deref follows an alias to its anchor; anchors are handy for a list shared by two keys.
func Deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// Describe names what n is, for "must be X, not Y" messages.
func Describe(n *yaml.Node) string {
	if n == nil {
		return "an empty value"
	}
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
