// Package yamldoc reads a YAML file of settings as a node tree, so that every error can name
// the file, line, column and key: Parse reads the one document (turning the library's syntax
// errors into a line a person can go to), a Walker reads its mappings into settings, and the
// value readers check single values. It is shared by the MTA's and the alert service's config
// files; which keys exist and what they mean stays with each.
package yamldoc

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

// Error is a problem at a position of a file. A package that wraps its own sentinel error
// defines its type on it (type FileError yamldoc.Error) and converts a Walker's Err.
type Error struct {
	File         string
	Line, Column int    // 1-based; 0 when not known (YAML syntax errors carry no column)
	Key          string // the setting, dotted when nested ("nats.urls"); "" for the document
	Msg          string // what is wrong and what to write instead
}

// Error reads "file:line:col: key: msg", the form editors and CI logs turn into links.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Parse decodes data, the contents of file, as exactly one document and returns its
// top-level node. what names what the file configures, for the second-document error ("one
// node", "one service"). The error is an *Error: a syntax error (no column), an empty file,
// or a second document.
func Parse(file string, data []byte, what string) (*yaml.Node, error) {
	n, err := parse(data, what)
	if err != nil {
		err.File = file
		return nil, err
	}
	return n, nil
}

// parse is Parse with its error as an *Error, without the file.
func parse(data []byte, what string) (*yaml.Node, *Error) {
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
// TODO: drop the shift once go.yaml.in/yaml counts from 1 throughout; TestParse and the
// "unclosed list" cases of the MTA's and the alert service's config tests fail when it does.
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
