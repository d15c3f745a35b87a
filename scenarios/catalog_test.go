package scenarios

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultCatalogIsTheEmbeddedList(t *testing.T) {
	want := []Model{
		{"T10", 10}, {"T25", 25}, {"T50", 50}, {"T100", 100},
		{"T250", 250}, {"T500", 500}, {"T1000", 1000},
	}
	if diff := cmp.Diff(want, DefaultCatalog().Models); diff != "" {
		t.Errorf("DefaultCatalog mismatch (-want +got):\n%s", diff)
	}
}

func TestDefaultCatalogReturnsACopy(t *testing.T) {
	c := DefaultCatalog()
	c.Models[0].ProcessLimit = 99
	if got := DefaultCatalog().Models[0].ProcessLimit; got != 10 {
		t.Errorf("changing one DefaultCatalog changed the next: T10 = %d", got)
	}
}

func TestCatalogLookupAndNext(t *testing.T) {
	c := DefaultCatalog()
	for _, tc := range []struct {
		name, next string
		ok         bool
	}{
		{"T10", "T25", true},
		{"T500", "T1000", true},
		{"T1000", "", false},
		{"T15", "", false},
	} {
		got, ok := c.Next(tc.name)
		if ok != tc.ok || got.Name != tc.next {
			t.Errorf("Next(%q) = %v, %v; want %q, %v", tc.name, got, ok, tc.next, tc.ok)
		}
	}
	if m, ok := c.Lookup("T100"); !ok || m.ProcessLimit != 100 {
		t.Errorf("Lookup(T100) = %v, %v", m, ok)
	}
	if _, ok := c.Lookup("t100"); ok {
		t.Error("Lookup is case-insensitive; model names are exact")
	}
}

func TestCatalogCovering(t *testing.T) {
	c := DefaultCatalog()
	for demand, want := range map[int]string{0: "T10", 10: "T10", 11: "T25", 100: "T100", 101: "T250", 1000: "T1000"} {
		if got, ok := c.Covering(demand); !ok || got.Name != want {
			t.Errorf("Covering(%d) = %v, %v; want %s", demand, got, ok, want)
		}
	}
	if got, ok := c.Covering(1001); ok {
		t.Errorf("Covering(1001) = %v; want none", got)
	}
	unordered := &Catalog{Models: []Model{{"big", 50}, {"small", 20}}}
	if got, _ := unordered.Covering(10); got.Name != "small" {
		t.Errorf("Covering on an unordered catalog = %v; want the smallest that fits", got)
	}
}

func TestCatalogWithOverridesCopies(t *testing.T) {
	c := DefaultCatalog()
	o := c.WithOverrides(map[string]int{"T10": 12, "T99": 5})
	if m, _ := o.Lookup("T10"); m.ProcessLimit != 12 {
		t.Errorf("override: T10 = %d, want 12", m.ProcessLimit)
	}
	if m, _ := c.Lookup("T10"); m.ProcessLimit != 10 {
		t.Errorf("WithOverrides changed its receiver: T10 = %d", m.ProcessLimit)
	}
	if _, ok := o.Lookup("T99"); ok || len(o.Models) != len(c.Models) {
		t.Error("an override of an unknown model added it")
	}
	if got := c.WithOverrides(nil); !cmp.Equal(got, c) || got == c {
		t.Error("WithOverrides(nil) should be an equal copy")
	}
}

func TestParseCatalogErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, pos, msg string }{
		{"empty list", "[]\n", "1:1", "the catalog lists no models"},
		{"empty file", "", "1:0", "file is empty"},
		{"not a list", "T10: 10\n", "1:1", "the catalog must be a list"},
		{"unknown key", "- {name: T10, limit: 10}\n", "1:15", `unknown key "limit" in a model; allowed keys: name, process_limit`},
		{"missing limit", "- {name: T10}\n", "1:3", "a model needs process_limit, e.g. process_limit: 10"},
		{"zero limit", "- {name: T10, process_limit: 0}\n", "1:30", "process_limit must be at least 1, not 0"},
		{"empty name", "- {name: '', process_limit: 10}\n", "1:10", "name is empty"},
		{"duplicate", "- {name: T10, process_limit: 10}\n- {name: T10, process_limit: 20}\n", "2:10",
			`model "T10" is listed twice`},
		{"not increasing", "- {name: A, process_limit: 10}\n- {name: B, process_limit: 10}\n", "2:28",
			"process_limit 10 of B is not above A's 10; list models smallest first"},
		{"syntax at the end", "- {name: A\n", "2:0", "YAML syntax: did not find expected ',' or '}'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog("models.yaml", []byte(tc.yaml))
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseCatalog error = %v, want an *Error", err)
			}
			if got := fmt.Sprintf("%d:%d", e.Line, e.Column); got != tc.pos || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %v\nwant at %s: %s", err, tc.pos, tc.msg)
			}
		})
	}
}

func TestLoadCatalog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "models.yaml")
	data := "- {name: S, process_limit: 3}\n- {name: M, process_limit: 30}\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Model{{"S", 3}, {"M", 30}}, c.Models); diff != "" {
		t.Errorf("LoadCatalog mismatch (-want +got):\n%s", diff)
	}
	if _, err := LoadCatalog(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadCatalog(missing) = %v, want a not-exist error", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("- {name: S}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCatalog(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":1:3: ") {
		t.Errorf("LoadCatalog(bad) = %v, want an error starting with %s:1:3", err, bad)
	}
}
