package scenarios

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The built-in library: one file per scenario, named after it.
//
//go:embed builtin/*.yaml
var builtinFS embed.FS

// Info names a built-in scenario for listings.
type Info struct {
	Name, Description string
}

// Builtins lists the built-in scenarios, sorted by name. It reads only the
// descriptions, so a listing works whatever catalog is in use.
func Builtins() []Info {
	var out []Info
	for _, name := range builtinNames() {
		data, _ := builtinFS.ReadFile(builtinPath(name))
		var head struct{ Description string }
		_ = yaml.Unmarshal(data, &head) // the tests hold every built-in valid
		out = append(out, Info{Name: name, Description: head.Description})
	}
	return out
}

// builtinNames lists the embedded files without ".yaml", sorted.
func builtinNames() []string {
	entries, _ := builtinFS.ReadDir("builtin")
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func builtinPath(name string) string { return path.Join("builtin", name+".yaml") }

// Builtin parses the built-in scenario name against cat (nil means
// DefaultCatalog). Its File is "builtin:<name>".
func Builtin(name string, cat *Catalog) (*Scenario, error) {
	if !slices.Contains(builtinNames(), name) {
		return nil, fmt.Errorf("%w %q; built-in scenarios: %s",
			ErrUnknown, name, strings.Join(builtinNames(), ", "))
	}
	data, err := builtinFS.ReadFile(builtinPath(name))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrUnknown, name, err)
	}
	return Parse("builtin:"+name, data, cat)
}

// Load resolves a command-line target: a built-in name first, else a file
// path. Built-ins win so that "spam-burst" means the same everywhere,
// whatever files the current directory holds; write ./spam-burst for a file.
func Load(nameOrPath string, cat *Catalog) (*Scenario, error) {
	if slices.Contains(builtinNames(), nameOrPath) {
		return Builtin(nameOrPath, cat)
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		why := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			why = "no such file"
		}
		return nil, fmt.Errorf("%w %q: not a built-in (%s) and not a readable file (%s)",
			ErrUnknown, nameOrPath, strings.Join(builtinNames(), ", "), why)
	}
	return Parse(nameOrPath, data, cat)
}
