package mta

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// routing is the part of the config a reload may change without a restart: who may send
// where, and which next hop takes it. Sessions and deliveries read the current value once per
// decision, so a reload changes the next RCPT and the next attempt, never one halfway through.
type routing struct {
	domains    map[string]bool
	firstDom   string // for postmaster without a domain
	users      map[string]bool
	relayNets  []netip.Prefix
	relay      string
	transports map[string]string
	hopTLS     map[string]TLSPolicy // by next hop, host:port
}

func newRouting(cfg Config) *routing {
	r := &routing{
		domains:    lowerSet(cfg.Domains),
		users:      lowerSet(cfg.Users),
		relayNets:  slices.Clone(cfg.RelayNetworks),
		relay:      cfg.Relay,
		transports: make(map[string]string, len(cfg.Transports)),
		hopTLS:     maps.Clone(cfg.HopTLS),
	}
	if len(cfg.Domains) > 0 {
		r.firstDom = strings.ToLower(cfg.Domains[0])
	}
	for d, hop := range cfg.Transports {
		r.transports[d] = hop
	}
	return r
}

// Reload applies cfg's recipient policy, routing and rate limits: Domains, Users,
// RelayNetworks, Relay, Transports and RateLimits; and it reads the STARTTLS certificate again. Every other field of cfg is ignored: those
// settings need a restart. cfg is validated whole first; on an error nothing changes.
//
// TODO: the stress settings, limits and timeouts are read without a lock by sessions and by
// go-smtp; making them reloadable needs them behind the same kind of atomic swap.
func (s *Server) Reload(cfg Config) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	cfg = cfg.withDerived()
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := s.reloadCertificate(cfg); err != nil {
		return err
	}
	s.routing.Store(newRouting(cfg))
	s.rates.configure(cfg.RateLimits)
	s.log.Info("recipient policy, routing and rate limits reloaded", "domains", cfg.Domains, "users", len(cfg.Users),
		"relay_networks", len(cfg.RelayNetworks), "relay", cfg.Relay, "transports", len(cfg.Transports),
		"rate_limits", fmt.Sprintf("%+v", cfg.RateLimits))
	return nil
}

// Validate reports whether New would accept cfg, without starting anything.
func (c Config) Validate() error { return c.withDerived().validate() }
