package yamldoc

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// node is the top-level node of src, a one-value YAML document.
func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	n, err := Parse("t.yaml", []byte(src), "one value")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// check compares what read made of src with want, or its error with wantErr when that is set.
func check[T any](t *testing.T, read func(*yaml.Node) (T, error), src string, want T, wantErr string) {
	t.Helper()
	got, err := read(node(t, src))
	switch {
	case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
		t.Errorf("%q: error %v, want one saying %q", src, err, wantErr)
	case wantErr == "" && err != nil:
		t.Errorf("%q: %v", src, err)
	case wantErr == "" && !cmp.Equal(want, got):
		t.Errorf("%q: got %v, want %v", src, got, want)
	}
}

func TestString(t *testing.T) {
	check(t, String, "abc", "abc", "")
	check(t, String, `""`, "", "must not be empty")
	check(t, String, "[a]", "", "must be a single value, not a list")
	check(t, String, "{a: b}", "", "must be a single value, not a mapping")
}

func TestBool(t *testing.T) {
	check(t, Bool, "true", true, "")
	check(t, Bool, "false", false, "")
	check(t, Bool, "yes", false, `"yes" is not true or false`)
}

func TestInt(t *testing.T) {
	check(t, Int(0, math.MaxInt), "12", 12, "")
	check(t, Int(1, math.MaxInt), "0", 0, "must be at least 1, got 0")
	check(t, Int(1, 5), "7", 0, "must be from 1 to 5, got 7")
	check(t, Int(1, 5), "0", 0, "must be from 1 to 5, got 0")
	check(t, Int(0, math.MaxInt), "1.5", 0, `"1.5" is not a whole number`)
}

func TestDuration(t *testing.T) {
	check(t, Duration, "-90s", -90*time.Second, "")
	check(t, Duration, "30", 0, `"30" is not a Go duration: write it with a unit, as in "30s"`)
	check(t, Duration, "2d", 0, `no days: write hours, as in "120h"`)
	check(t, MinDuration(0), "0s", 0, "")
	check(t, MinDuration(0), "-1s", 0, "must not be negative, got -1s")
	check(t, MinDuration(time.Second), "500ms", 0, "must be at least 1s, got 500ms")
	check(t, MinDuration(time.Nanosecond), "1h30m", 90*time.Minute, "")
}

func TestList(t *testing.T) {
	check(t, List(String), "[a, b]", []string{"a", "b"}, "")
	check(t, List(String), "a", []string{"a"}, "")
	check(t, List(String), "[]", []string{}, "")
	check(t, NonEmptyList(String), "[]", nil, "must list at least one")
	check(t, List(String), "{a: b}", nil, "must be a list")

	// An item's error points at the item.
	n := node(t, "[a, [b]]")
	_, err := List(String)(n)
	if at := NodeOf(err, n); at == n || at.Line != 1 || at.Column != 5 {
		t.Errorf("the error of the second item is at %+v, want 1:5", at)
	}
}

func TestNodeOf(t *testing.T) {
	whole, inner := &yaml.Node{Line: 1}, &yaml.Node{Line: 2}
	if got := NodeOf(At(inner, "bad"), whole); got != inner {
		t.Errorf("an At error gives %+v, want its node", got)
	}
	if got := NodeOf(errors.New("bad"), whole); got != whole {
		t.Errorf("a plain error gives %+v, want the whole value", got)
	}
}
