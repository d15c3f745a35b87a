package mta

import (
	"net/netip"
	"strings"

	"github.com/emersion/go-smtp"
)

// checkRecipient applies the recipient policy and returns the address to queue. Local domains
// take mail from anyone; other domains only from RelayNetworks, so the gateway is no open relay.
func (s *Server) checkRecipient(to string, client netip.Addr) (string, *smtp.SMTPError) {
	rt := s.routing.Load()
	// RFC 5321 section 4.1.1.3: "postmaster" without a domain must be accepted.
	if strings.EqualFold(to, "postmaster") {
		return "postmaster@" + s.postmasterDomain(rt), nil
	}
	// go-smtp has already dropped any source route ("@a,@b:user@c" arrives as "user@c"), so
	// the route cannot be refused here; the final mailbox meets the policy below instead, which
	// is what RFC 5321 appendix C allows and leaves the route no way to relay.
	a, err := parseAddress(to)
	if err != nil {
		// RFC 5321 section 4.2.2: 553, mailbox name not allowed.
		return "", smtpErr(553, smtp.EnhancedCode{5, 1, 3}, "Recipient address refused: %v", err)
	}
	if rt.domains[a.Domain] {
		local := strings.ToLower(a.Local)
		// RFC 5321 section 4.5.1: every domain that takes mail has a postmaster.
		if len(rt.users) > 0 && !rt.users[local] && local != "postmaster" {
			return "", errUnknownUser
		}
		return a.String(), nil
	}
	if rt.relayAllowed(client) {
		return a.String(), nil
	}
	return "", errRelayDenied
}

func (rt *routing) relayAllowed(ip netip.Addr) bool {
	for _, p := range rt.relayNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (s *Server) postmasterDomain(rt *routing) string {
	if rt.firstDom != "" {
		return rt.firstDom
	}
	return s.cfg.Hostname
}

func lowerSet(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[strings.ToLower(v)] = true
	}
	return m
}
