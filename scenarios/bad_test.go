package scenarios

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadFiles parses every file under testdata/bad. Each starts with a
// comment "# want: LINE:COL message-substring"; COL 0 means the YAML parser
// gives no column.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			pos, msg := wantOf(t, data)
			_, err = Parse(file, data, nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse returned %v, want an *Error", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) is false for %v", err)
			}
			if got := fmt.Sprintf("%d:%d", e.Line, e.Column); got != pos || !strings.Contains(e.Msg, msg) {
				t.Errorf("got error\n  %s\nwant at %s a message containing\n  %s", err, pos, msg)
			}
			if e.File != file {
				t.Errorf("error names file %q, want %q", e.File, file)
			}
		})
	}
}

// wantOf reads the expectation on a bad file's first line.
func wantOf(t *testing.T, data []byte) (pos, msg string) {
	t.Helper()
	first, _, _ := strings.Cut(string(data), "\n")
	rest, ok := strings.CutPrefix(first, "# want: ")
	if !ok {
		t.Fatalf("first line %q does not start with \"# want: \"", first)
	}
	pos, msg, _ = strings.Cut(rest, " ")
	return pos, msg
}
