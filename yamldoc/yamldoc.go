// Package yamldoc reads one YAML document into a node tree, turning the library's syntax errors
// into a line a person can go to. It is the shared first step of the MTA's and the alert
// service's config files; the walk over the nodes stays with each.
package yamldoc

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a problem with the document as a whole: a syntax error (no column), an empty file,
// or a second document.
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return e.Msg }

// Parse decodes data as exactly one document and returns its top-level node. what names what
// the file configures, for the second-document error ("one node", "one service").
func Parse(data []byte, what string) (*yaml.Node, *Error) {
	empty := &Error{Line: 1, Column: 1, Msg: "the file is empty"}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, empty
		}
		return nil, syntax(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Line: extra.Line, Column: extra.Column,
			Msg: "a second YAML document (---) follows; a file configures " + what}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntax(err)
	}
	if len(doc.Content) != 1 {
		return nil, empty
	}
	return doc.Content[0], nil
}

var errLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// zeroBased are the v3.0.6 parser messages whose line counts from 0 (its scanner counts from 1).
var zeroBased = []string{"did not find expected", "found duplicate %", "found incompatible", "found undefined tag"}

// syntax turns a YAML syntax error, which carries a line and no column, into an Error.
// TODO: drop the shift once go.yaml.in/yaml counts from 1 throughout; the "unclosed list" cases
// of the MTA's and the alert service's config tests fail when it does.
func syntax(err error) *Error {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 1
	if m := errLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		for _, p := range zeroBased {
			if strings.HasPrefix(msg, p) {
				line++
				break
			}
		}
	}
	return &Error{Line: max(line, 1), Msg: "YAML syntax: " + msg}
}
