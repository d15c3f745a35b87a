package scenarios

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// topology reads the cluster and its nodes. The cluster is required rather
// than defaulted: it is part of every NATS subject and alert, and a silent
// "default" would let two scenarios' events mix on one server.
func (p *parser) topology(n *yaml.Node, cat *Catalog) Topology {
	o := p.object(n, "topology", []string{"cluster", "nodes"})
	t := Topology{Cluster: p.ident(p.need(o, "cluster", "cluster: edge"), "cluster")}
	items := p.list(p.need(o, "nodes", "nodes: [{name: edge-1, model: T10}]"), "nodes")
	p.check(o.get("nodes"), len(items) > 0,
		"nodes is empty; list at least one, e.g. - {name: edge-1, model: T10}")
	names := map[string]bool{}
	for _, it := range items {
		node, nameNode := p.node(it, cat)
		p.check(nameNode, !names[node.Name],
			"node %q is listed twice; node names must be unique", node.Name)
		names[node.Name] = true
		t.Nodes = append(t.Nodes, node)
	}
	return t
}

// node reads one node and resolves its model's limit. It also returns the
// name's node, for the duplicate check.
func (p *parser) node(n *yaml.Node, cat *Catalog) (Node, *yaml.Node) {
	o := p.object(n, "a node", []string{"name", "model", "weight"})
	nameNode := p.need(o, "name", "name: edge-1")
	modelNode := p.need(o, "model", "model: T10")
	node := Node{Name: p.ident(nameNode, "node name"), Model: p.text(modelNode, "model"), Weight: 1}
	if w := o.get("weight"); w != nil {
		node.Weight = p.positive(w, "weight")
	}
	if p.err != nil {
		return node, nameNode
	}
	m, ok := cat.Lookup(node.Model)
	p.check(modelNode, ok, "model %q is not in the catalog; known models: %s",
		node.Model, strings.Join(cat.Names(), ", "))
	node.ProcessLimit = m.ProcessLimit
	return node, nameNode
}
