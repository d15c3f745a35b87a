package scenarios

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every parse and validation error, so callers can
// map them all to "bad input" (exit 2) with errors.Is.
var ErrInvalid = errors.New("invalid scenario")

// ErrUnknown means a name is neither a built-in scenario nor a readable file.
var ErrUnknown = errors.New("unknown scenario")

// Error is a problem at a position in a scenario or catalog file. Msg says
// what is wrong and what to write instead.
type Error struct {
	File   string
	Line   int // 1-based
	Column int // 1-based; 0 when the YAML parser did not report one
	Msg    string
}

// Error formats the error as "file:line:col: msg", the form editors and CI
// logs turn into links.
func (e *Error) Error() string {
	pos := fmt.Sprintf("%d:%d", e.Line, e.Column)
	if e.Column == 0 {
		pos = fmt.Sprint(e.Line)
	}
	if e.File == "" {
		return pos + ": " + e.Msg
	}
	return e.File + ":" + pos + ": " + e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalid) true for every *Error.
func (e *Error) Unwrap() error { return ErrInvalid }
