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

// Reload applies cfg's recipient policy, routing and rate limits (Domains, Users,
// RelayNetworks, Relay, Transports, RateLimits), its session limits (CommandTimeout,
// StressCommandTimeout, HardErrorLimit, StressHardErrorLimit, JunkLimit, StressJunkLimit,
// MinDataRate, SlotWait, WaitMax, ClientCap: for sessions and waits that begin after it; see
// tuning), and reads the STARTTLS certificate again. Every other field of cfg is ignored: those
// settings need a restart. cfg is validated whole first; on an error nothing changes.
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
	s.tuning.Store(newTuning(cfg))
	s.rates.configure(cfg.RateLimits)
	s.log.Info("recipient policy, routing, rate limits and session limits reloaded", "domains", cfg.Domains, "users", len(cfg.Users),
		"relay_networks", len(cfg.RelayNetworks), "relay", cfg.Relay, "transports", len(cfg.Transports),
		"rate_limits", fmt.Sprintf("%+v", cfg.RateLimits),
		"slot_wait", cfg.SlotWait, "wait_max", cfg.WaitMax, "client_cap", cfg.ClientCap,
		"command_timeout", cfg.CommandTimeout, "stress_command_timeout", cfg.StressCommandTimeout,
		"min_data_rate", cfg.MinDataRate, "hard_error_limit", cfg.HardErrorLimit,
		"stress_hard_error_limit", cfg.StressHardErrorLimit, "junk_limit", cfg.JunkLimit,
		"stress_junk_limit", cfg.StressJunkLimit, "hopcount_limit", cfg.HopcountLimit)
	return nil
}

// Validate reports whether New would accept cfg, without starting anything.
func (c Config) Validate() error { return c.withDerived().validate() }
