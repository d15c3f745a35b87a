package yamldoc

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, file string
		want       Error
		text       string // want.Error(): a syntax error has no column
	}{
		// The YAML library counts this line from 0; see syntax.
		{name: "an unclosed flow list is reported on its line", file: "a: 1\nb: [x, y\nc: 2\n",
			want: Error{Line: 2, Msg: "YAML syntax: did not find expected ',' or ']'"},
			text: "t.yaml:2: YAML syntax: did not find expected ',' or ']'"},
		{name: "a tab in the indentation", file: "a:\n\tb: 1\n",
			want: Error{Line: 2, Msg: "YAML syntax: found character that cannot start any token"},
			text: "t.yaml:2: YAML syntax: found character that cannot start any token"},
		{name: "an empty file", file: "",
			want: Error{Line: 1, Column: 1, Msg: "the file is empty"},
			text: "t.yaml:1:1: the file is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(c.file), "one sample")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v, want an *Error", err)
			}
			c.want.File = "t.yaml"
			if diff := cmp.Diff(&c.want, e); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if err.Error() != c.text {
				t.Errorf("error reads %q, want %q", err, c.text)
			}
		})
	}
	if n, err := Parse("t.yaml", []byte("a: 1\n"), "one sample"); err != nil || n.Kind != yaml.MappingNode {
		t.Errorf("a valid file gives %v, %v", n, err)
	}
}
