package mta

import (
	"net/netip"
	"strings"

	"github.com/emersion/go-smtp"
)

// checkRecipient applies the recipient policy and returns the address to queue. Local domains
// take mail from anyone; other domains only from RelayNetworks, so the gateway is no open relay.
func (s *Server) checkRecipient(to string, client netip.Addr) (string, *smtp.SMTPError) {
	// RFC 5321 section 4.1.1.3: "postmaster" without a domain must be accepted.
	if strings.EqualFold(to, "postmaster") {
		return "postmaster@" + s.postmasterDomain(), nil
	}
	// go-smtp has already dropped any source route ("@a,@b:user@c" arrives as "user@c"), so
	// the route cannot be refused here; the final mailbox meets the policy below instead, which
	// is what RFC 5321 appendix C allows and leaves the route no way to relay.
	a, err := parseAddress(to)
	if err != nil {
		// RFC 5321 section 4.2.2: 553, mailbox name not allowed.
		return "", smtpErr(553, smtp.EnhancedCode{5, 1, 3}, "Recipient address refused: %v", err)
	}
	if s.domains[a.Domain] {
		local := strings.ToLower(a.Local)
		// RFC 5321 section 4.5.1: every domain that takes mail has a postmaster.
		if len(s.users) > 0 && !s.users[local] && local != "postmaster" {
			return "", errUnknownUser
		}
		return a.String(), nil
	}
	if s.relayAllowed(client) {
		return a.String(), nil
	}
	return "", errRelayDenied
}

func (s *Server) relayAllowed(ip netip.Addr) bool {
	for _, p := range s.cfg.RelayNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (s *Server) postmasterDomain() string {
	if len(s.cfg.Domains) > 0 {
		return s.cfg.Domains[0]
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
