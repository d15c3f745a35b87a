package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input panics Parse and that every failure is an
// *Error with a usable position: exit 2 with file:line:col depends on it.
// Seeds: testdata/fuzz/FuzzParse plus every good, bad and built-in file.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "builtin/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	cat := DefaultCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data, cat)
		if err == nil {
			if s == nil || len(s.Phases) == 0 || len(s.Topology.Nodes) == 0 {
				t.Fatalf("Parse accepted an incomplete scenario: %+v", s)
			}
			return
		}
		var e *Error
		switch {
		case errors.As(err, &e):
			if e.Line < 1 || e.Column < 0 || e.Msg == "" || !errors.Is(err, ErrInvalid) {
				t.Fatalf("bad *Error %#v", e)
			}
		case !errors.Is(err, ErrUnknown):
			t.Fatalf("Parse error %T %v is neither *Error nor ErrUnknown", err, err)
		}
	})
}

// FuzzParseCatalog holds ParseCatalog to the same contract.
func FuzzParseCatalog(f *testing.F) {
	f.Add(modelsYAML)
	f.Add([]byte("- {name: A, process_limit: 2}\n- {name: A, process_limit: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseCatalog("models.yaml", data)
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Line < 1) {
			t.Fatalf("ParseCatalog error %v is not an *Error with a line", err)
		}
	})
}
