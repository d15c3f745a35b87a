package yamldoc

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// sample is what the walker tests read: two top-level keys and a block.
type sample struct {
	Name   string
	Wait   time.Duration
	Hosts  []string
	Strict bool
}

func (s *sample) settings() []Setting {
	return []Setting{
		Into("name", &s.Name, String),
		Into("wait", &s.Wait, MinDuration(time.Second)),
		Block("peers", func() []Setting {
			return []Setting{
				Into("hosts", &s.Hosts, NonEmptyList(String)),
				Into("strict", &s.Strict, Bool),
			}
		}),
	}
}

// walk reads data as a sample file named t.yaml.
func walk(data string) (sample, *Walker) {
	var s sample
	w := &Walker{File: "t.yaml"}
	w.Mapping(w.Document([]byte(data), "one sample"), "", s.settings())
	return s, w
}

func TestWalkerReadsSettings(t *testing.T) {
	s, w := walk("name: a\nwait: 5s\npeers:\n  hosts: &h [x, y]\n  strict: true\n")
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	want := sample{Name: "a", Wait: 5 * time.Second, Hosts: []string{"x", "y"}, Strict: true}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
	if n := w.Values()["peers.strict"]; n == nil || n.Line != 5 || n.Column != 11 {
		t.Errorf("the value of peers.strict is at %+v, want 5:11", n)
	}
}

func TestWalkerErrors(t *testing.T) {
	cases := []struct {
		name string
		file string
		want Error
	}{
		{name: "a misspelt key names the likely one", file: "nmae: a\n",
			want: Error{Line: 1, Column: 1, Key: "nmae", Msg: `unknown key; did you mean "name"?`}},
		{name: "a key far from every known one gets the keys known at the top", file: "colour: red\n",
			want: Error{Line: 1, Column: 1, Key: "colour", Msg: "unknown key; known keys at the top: name, peers, wait"}},
		{name: "and in a block, the keys known there", file: "peers: {port: x}\n",
			want: Error{Line: 1, Column: 9, Key: "peers.port", Msg: "unknown key; known keys in peers: hosts, strict"}},
		{name: "a key given twice", file: "name: a\nname: b\n",
			want: Error{Line: 2, Column: 1, Key: "name", Msg: "given twice (first on line 1)"}},
		{name: "a key without a value", file: "name:\n",
			want: Error{Line: 1, Column: 1, Key: "name", Msg: "has no value; give one or remove the key"}},
		{name: "a list for the whole file", file: "- a\n",
			want: Error{Line: 1, Column: 1, Msg: "the file must be a mapping of keys (key: value), not a list"}},
		{name: "a value for a block", file: "peers: x\n",
			want: Error{Line: 1, Column: 8, Key: "peers",
				Msg: `peers must be a mapping of keys (key: value), not the value "x"`}},
		{name: "a key that is a list", file: "[a]: b\n",
			want: Error{Line: 1, Column: 1, Msg: "a key must be a plain name, not a list"}},
		{name: "a bad value is reported at the value", file: "wait: 0s\n",
			want: Error{Line: 1, Column: 7, Key: "wait", Msg: "must be at least 1s, got 0s"}},
		{name: "a bad list item is reported at the item", file: "peers: {hosts: [x, '']}\n",
			want: Error{Line: 1, Column: 20, Key: "peers.hosts", Msg: "must not be empty"}},
		{name: "only the first problem is kept", file: "wait: 1\nname: a\nname: b\n",
			want: Error{Line: 1, Column: 7, Key: "wait",
				Msg: `"1" is not a Go duration: write it with a unit, as in "30s", "5m" or "1h30m"`}},
		{name: "an empty file", file: "# nothing\n",
			want: Error{Line: 1, Column: 1, Msg: "the file is empty"}},
		{name: "a second document is reported at its ---", file: "name: a\n---\nname: b\n",
			want: Error{Line: 2, Column: 1, Msg: "a second YAML document (---) follows; a file configures one sample"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, w := walk(c.file)
			c.want.File = "t.yaml"
			if diff := cmp.Diff(&c.want, w.Err()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}

	_, w := walk("nmae: a\n")
	if got, want := w.Err().Error(), `t.yaml:1:1: nmae: unknown key; did you mean "name"?`; got != want {
		t.Errorf("the error reads %q, want %q", got, want)
	}
}

func TestWalkerFollowsAliases(t *testing.T) {
	s, w := walk("name: &n a\npeers: {hosts: [*n, b]}\n")
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !cmp.Equal(want, s.Hosts) {
		t.Errorf("hosts %v, want %v", s.Hosts, want)
	}
}

func TestWalkerDoesNothingAfterAProblem(t *testing.T) {
	w := &Walker{File: "t.yaml"}
	w.Fail(nil, "first", "one")
	var s sample
	w.Mapping(w.Document([]byte("name: a\n"), "one sample"), "", s.settings())
	w.Fail(&yaml.Node{Line: 3}, "second", "two")
	// An error at no position names only the file.
	if got := w.Err().Error(); s.Name != "" || got != "t.yaml: first: one" {
		t.Errorf("name %q, error %q; want nothing read and the first error kept", s.Name, got)
	}
}

// FuzzWalker holds the walker to what the config files rely on: no input panics it, and every
// problem names the file and a line.
func FuzzWalker(f *testing.F) {
	for _, s := range []string{
		"name: a\nwait: 5s\npeers: {hosts: [x, y], strict: true}\n",
		"name: &n a\npeers: {hosts: [*n, *n]}\n",
		"peers: [unclosed\n",
		"- a\n- b\n",
		"? [a]\n: b\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, w := walk(string(data))
		if e := w.Err(); e != nil && (e.File != "t.yaml" || e.Line < 1 || e.Msg == "") {
			t.Fatalf("error %#v does not name the file, a line and the problem", e)
		}
		if e := w.Err(); e != nil && !strings.HasPrefix(e.Error(), "t.yaml:") {
			t.Fatalf("error %q does not start with the file", e)
		}
	})
}
