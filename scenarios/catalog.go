package scenarios

import (
	_ "embed"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Model is an appliance model and its process limit: how many SMTP sessions
// it serves at once.
type Model struct {
	Name         string
	ProcessLimit int
}

// Catalog is the list of models, smallest first. Order matters: "the next
// model", advised when a node is stressed too often, is the next in the list.
type Catalog struct {
	Models []Model
}

//go:embed models.yaml
var modelsYAML []byte

var defaultCatalog = sync.OnceValue(func() *Catalog {
	c, err := ParseCatalog("builtin:models.yaml", modelsYAML)
	if err != nil {
		panic("scenarios: embedded models.yaml is broken: " + err.Error())
	}
	return c
})

// DefaultCatalog returns the embedded catalog. Each call returns a fresh
// copy, so a caller may change it.
func DefaultCatalog() *Catalog { return defaultCatalog().clone() }

// LoadCatalog reads a catalog file (--models FILE). A read error is returned
// as is; a content error is an *Error with the position.
func LoadCatalog(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	return ParseCatalog(path, data)
}

// ParseCatalog parses a catalog: a YAML list of {name, process_limit},
// names unique and non-empty, limits above 0 and strictly increasing.
func ParseCatalog(file string, data []byte) (*Catalog, error) {
	p := &parser{file: file}
	root := p.document(data)
	items := p.list(root, "the catalog")
	p.check(root, len(items) > 0,
		"the catalog lists no models; write - {name: T10, process_limit: 10}")
	c := &Catalog{}
	for _, it := range items {
		c.Models = append(c.Models, p.model(it, c))
	}
	if p.err != nil {
		return nil, p.err
	}
	return c, nil
}

// model reads one catalog entry and checks it against those before it.
func (p *parser) model(n *yaml.Node, c *Catalog) Model {
	o := p.object(n, "a model", []string{"name", "process_limit"})
	nameNode := p.need(o, "name", "name: T10")
	limitNode := p.need(o, "process_limit", "process_limit: 10")
	m := Model{Name: p.text(nameNode, "name"), ProcessLimit: p.whole(limitNode, "process_limit", 1)}
	if p.err != nil {
		return m
	}
	p.check(nameNode, strings.TrimSpace(m.Name) != "", "name is empty; give the model a name like T10")
	_, dup := c.Lookup(m.Name)
	p.check(nameNode, !dup, "model %q is listed twice; keep one", m.Name)
	if k := len(c.Models); k > 0 {
		prev := c.Models[k-1]
		p.check(limitNode, m.ProcessLimit > prev.ProcessLimit,
			"process_limit %d of %s is not above %s's %d; list models smallest first",
			m.ProcessLimit, m.Name, prev.Name, prev.ProcessLimit)
	}
	return m
}

func (c *Catalog) clone() *Catalog {
	return &Catalog{Models: slices.Clone(c.Models)}
}

// Names lists the model names in catalog order, for messages and listings.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.Models))
	for i, m := range c.Models {
		names[i] = m.Name
	}
	return names
}

// Lookup returns the model called name.
func (c *Catalog) Lookup(name string) (Model, bool) {
	i := c.index(name)
	if i < 0 {
		return Model{}, false
	}
	return c.Models[i], true
}

func (c *Catalog) index(name string) int {
	return slices.IndexFunc(c.Models, func(m Model) bool { return m.Name == name })
}

// Next returns the model after name in the list; false if name is the
// largest or unknown.
func (c *Catalog) Next(name string) (Model, bool) {
	i := c.index(name)
	if i < 0 || i+1 >= len(c.Models) {
		return Model{}, false
	}
	return c.Models[i+1], true
}

// Covering returns the smallest model whose limit is at least demand; false
// if none is big enough. It compares limits rather than trusting the order,
// so a hand-built catalog gives the right answer too.
func (c *Catalog) Covering(demand int) (Model, bool) {
	var best Model
	found := false
	for _, m := range c.Models {
		if m.ProcessLimit >= demand && (!found || m.ProcessLimit < best.ProcessLimit) {
			best, found = m, true
		}
	}
	return best, found
}

// WithOverrides returns a copy with the limits of the named models replaced
// (a scenario's `models:` block). Names not in the catalog are ignored:
// Parse has already rejected them. c is not changed.
func (c *Catalog) WithOverrides(limits map[string]int) *Catalog {
	out := c.clone()
	for i, m := range out.Models {
		if l, ok := limits[m.Name]; ok {
			out.Models[i].ProcessLimit = l
		}
	}
	return out
}
