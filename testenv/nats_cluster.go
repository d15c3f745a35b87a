package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterSize is the number of servers of a NATSCluster: the smallest that keeps a
// three-replica stream writable with one server gone.
const ClusterSize = 3

// clusterReadyTimeout bounds the wait for a JetStream meta leader and for the
// first three-replica stream. Elections on a loaded two-core machine take a
// few seconds.
const clusterReadyTimeout = 30 * time.Second

// clusterStartAttempts: the route ports are picked before the servers bind
// them, so another process may take one in between; a fresh pick then
// usually works.
const clusterStartAttempts = 3

// probeStream is created and deleted to prove the cluster takes replicated
// streams; nothing else uses the name.
const probeStream = "TESTENV_CLUSTER_PROBE"

// ErrBadIndex means a server index outside 0 … ClusterSize-1.
var ErrBadIndex = errors.New("testenv: no such cluster server")

// NATSClusterOptions configures StartNATSCluster. The zero value is three
// JetStream servers on random ports, each with a fresh store that Stop
// removes.
type NATSClusterOptions struct {
	// Name is the NATS cluster name; "" means "testenv".
	Name string
	// StoreDir, if set, holds each server's store in StoreDir/<server name>,
	// kept by Stop. "" means a temp dir per server.
	StoreDir string
}

// NATSCluster is three embedded nats-servers on 127.0.0.1 forming one
// JetStream cluster.
type NATSCluster struct {
	name    string
	mu      sync.Mutex // held while a server is started or stopped
	members []*member
	stopped bool
}

// member is one server of the cluster. Its ports and store stay fixed, so a
// restart rejoins as the same peer.
type member struct {
	name      string
	port      int // client port; -1 until the first start has bound one
	routePort int
	storeDir  string
	ownStore  bool
	srv       *server.Server // nil while killed; caller holds the cluster's mu
}

// StartNATSCluster starts three JetStream servers with the full route list
// each, and returns once they have elected a meta leader and a stream with
// three replicas can be created.
func StartNATSCluster(opts NATSClusterOptions) (*NATSCluster, error) {
	if opts.Name == "" {
		opts.Name = "testenv"
	}
	var err error
	for range clusterStartAttempts {
		var c *NATSCluster
		if c, err = startCluster(opts); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func startCluster(opts NATSClusterOptions) (*NATSCluster, error) {
	// Routes must be known at start (a JetStream cluster cannot learn its
	// peers later), so the route ports are picked before any server runs.
	routePorts, err := freePorts(ClusterSize)
	if err != nil {
		return nil, err
	}
	c := &NATSCluster{name: opts.Name}
	for i, rp := range routePorts {
		m := &member{name: fmt.Sprintf("%s-%d", opts.Name, i), port: -1, routePort: rp}
		if err := m.makeStore(opts.StoreDir); err != nil {
			c.Stop()
			return nil, err
		}
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		if err := c.startMember(m); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.waitReplicated(clusterReadyTimeout); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// freePorts finds n distinct free ports on 127.0.0.1, holding them all open
// at once so that none is picked twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testenv: cluster ports: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (m *member) makeStore(base string) error {
	if base != "" {
		m.storeDir = filepath.Join(base, m.name)
		return os.MkdirAll(m.storeDir, 0o750)
	}
	dir, err := os.MkdirTemp("", "testenv-nats-"+m.name+"-")
	if err != nil {
		return fmt.Errorf("testenv: nats store: %w", err)
	}
	m.storeDir, m.ownStore = dir, true
	return nil
}

// startMember runs m's server. The caller holds mu, or c is not shared yet.
func (c *NATSCluster) startMember(m *member) error {
	srv, err := runServer(c.serverOptions(m))
	if err != nil {
		return fmt.Errorf("testenv: cluster server %s: %w", m.name, err)
	}
	m.srv = srv
	m.port = srv.Addr().(*net.TCPAddr).Port
	return nil
}

// serverOptions gives every server the same route list, itself included:
// nats-server ignores a route to itself, and one list is simpler to get right.
func (c *NATSCluster) serverOptions(m *member) *server.Options {
	routes := make([]string, len(c.members))
	for i, o := range c.members {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.routePort)
	}
	return &server.Options{
		ServerName: m.name,
		Host:       "127.0.0.1",
		Port:       m.port,
		JetStream:  true,
		StoreDir:   m.storeDir,
		NoLog:      true,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: c.name,
			Host: "127.0.0.1",
			Port: m.routePort,
		},
		Routes: server.RoutesFromStr(strings.Join(routes, ",")),
	}
}

// waitReplicated polls until a meta leader is elected and a three-replica
// stream can be created, then deletes that stream.
func (c *NATSCluster) waitReplicated(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return fmt.Errorf("testenv: cluster client: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("testenv: cluster client: %w", err)
	}
	var last error
	for {
		if last = c.probe(ctx, js); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: nats cluster after %s: %v", ErrNotReady, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *NATSCluster) probe(ctx context.Context, js jetstream.JetStream) error {
	if !c.hasMetaLeader() {
		return errors.New("no jetstream meta leader yet")
	}
	attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := js.CreateOrUpdateStream(attempt, jetstream.StreamConfig{
		Name:     probeStream,
		Subjects: []string{"testenv.cluster.probe"},
		Storage:  jetstream.FileStorage,
		Replicas: ClusterSize,
	})
	if err != nil {
		return fmt.Errorf("three-replica stream: %w", err)
	}
	return js.DeleteStream(attempt, probeStream)
}

func (c *NATSCluster) hasMetaLeader() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.srv != nil && m.srv.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// URLs are the client URLs of all three servers, killed ones included:
// a client given all of them fails over on its own.
func (c *NATSCluster) URLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.members))
	for i, m := range c.members {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", m.port)
	}
	return urls
}

// ServerName is the name of server i, as JetStream reports it for stream
// and consumer leaders.
func (c *NATSCluster) ServerName(i int) string {
	if i < 0 || i >= len(c.members) {
		return ""
	}
	return c.members[i].name
}

// Server is server i while it runs, nil while it is killed.
func (c *NATSCluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.members) {
		return nil
	}
	return c.members[i].srv
}

// Kill stops server i at once, as a crashed node: its clients and routes
// drop, and the other two keep three-replica streams writable. Shutdown is
// as abrupt as an in-process server gets; nats-server still hands off the
// raft groups it leads on the way out. Killing a killed server does nothing.
func (c *NATSCluster) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.memberLocked(i)
	if err != nil {
		return err
	}
	if m.srv != nil {
		shutdownNATS(m.srv)
		m.srv = nil
	}
	return nil
}

// Restart stops server i if it runs and starts it again on the same ports
// and store, then waits until it has caught up with the cluster's JetStream
// state, so that a test may kill another one next.
func (c *NATSCluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.memberLocked(i)
	if err != nil {
		return err
	}
	if m.srv != nil {
		shutdownNATS(m.srv)
		m.srv = nil
	}
	if err := c.startMember(m); err != nil {
		return err
	}
	deadline := time.Now().Add(clusterReadyTimeout)
	for !m.srv.JetStreamIsCurrent() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s not current after %s", ErrNotReady, m.name, clusterReadyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// memberLocked checks i. The caller holds mu.
func (c *NATSCluster) memberLocked(i int) (*member, error) {
	if c.stopped {
		return nil, fmt.Errorf("%w: nats cluster", ErrStopped)
	}
	if i < 0 || i >= len(c.members) {
		return nil, fmt.Errorf("%w: %d of %d", ErrBadIndex, i, len(c.members))
	}
	return c.members[i], nil
}

// Stop shuts every server down and removes the stores StartNATSCluster
// created. Calling it again does nothing.
func (c *NATSCluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	// All at once: one by one, the last servers would spend their shutdown
	// trying to reach a quorum that is already gone.
	var wg sync.WaitGroup
	for _, m := range c.members {
		if m.srv != nil {
			wg.Go(func() { shutdownNATS(m.srv) })
		}
	}
	wg.Wait()
	for _, m := range c.members {
		m.srv = nil
		if m.ownStore {
			_ = os.RemoveAll(m.storeDir)
		}
	}
}
