package mta

import (
	"errors"
	"strings"
)

// Address parsing is deliberately narrower than RFC 5321 allows: every form that old relays
// interpreted as "forward this elsewhere" is refused, so that no recipient can route through
// this gateway except by its domain.

// Reasons an address is refused; the session turns them into 501 or 553 replies.
var (
	errAddrEmpty     = errors.New("address is empty")
	errAddrTooLong   = errors.New("address is too long")
	errAddrNoAt      = errors.New("address has no @domain")
	errAddrManyAt    = errors.New("address has more than one @ (quoted local part or source route)")
	errAddrRoute     = errors.New("source routes are not accepted")
	errAddrPercent   = errors.New("the percent hack is not accepted")
	errAddrBang      = errors.New("bang paths are not accepted")
	errAddrQuoted    = errors.New("quoted local parts are not accepted")
	errAddrLocal     = errors.New("local part is not a dot-atom")
	errAddrDomain    = errors.New("domain is not a host name")
	errAddrLiteral   = errors.New("address literals are not accepted")
	errAddrTrailDot  = errors.New("domain ends with a dot")
	errAddrNonASCII  = errors.New("address is not ASCII (SMTPUTF8 is not offered)")
	errAddrLocalLong = errors.New("local part is longer than 64 octets")
)

// address is a mailbox split at its one '@'. Domain is lower case; Local keeps its case, as
// RFC 5321 section 2.4 leaves local parts to the receiving host.
type address struct {
	Local, Domain string
}

func (a address) String() string { return a.Local + "@" + a.Domain }

// parseAddress parses a mailbox as it reaches the session (go-smtp has removed the angle
// brackets, unquoted a quoted local part and dropped any source route) and also its raw forms.
func parseAddress(s string) (address, error) {
	switch {
	case s == "":
		return address{}, errAddrEmpty
	case len(s) > 254: // RFC 5321 section 4.5.3.1.3: a path is at most 256 octets with brackets
		return address{}, errAddrTooLong
	case strings.HasPrefix(s, "@") || strings.ContainsAny(s, ":,"):
		return address{}, errAddrRoute // RFC 5321 section 3.6.1 and appendix C: "@a,@b:user@c"
	case strings.Contains(s, `"`):
		return address{}, errAddrQuoted
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return address{}, errAddrNonASCII
		}
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return address{}, errAddrNoAt
	}
	if strings.IndexByte(s, '@') != at {
		return address{}, errAddrManyAt
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local); err != nil {
		return address{}, err
	}
	if err := checkDomain(domain); err != nil {
		return address{}, err
	}
	return address{Local: local, Domain: strings.ToLower(domain)}, nil
}

// checkLocal accepts an RFC 5322 dot-atom without '%' and '!', which are atext but were
// routing operators ("user%other@us", "host!user@us").
func checkLocal(l string) error {
	switch {
	case l == "":
		return errAddrLocal
	case len(l) > 64: // RFC 5321 section 4.5.3.1.1
		return errAddrLocalLong
	case strings.Contains(l, "%"):
		return errAddrPercent
	case strings.Contains(l, "!"):
		return errAddrBang
	case l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, ".."):
		return errAddrLocal
	}
	for i := 0; i < len(l); i++ {
		if !isAtext(l[i]) && l[i] != '.' {
			return errAddrLocal
		}
	}
	return nil
}

// isAtext is RFC 5322 section 3.2.3's atext, ASCII only.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func checkDomain(d string) error {
	switch {
	case strings.HasPrefix(d, "["):
		return errAddrLiteral // RFC 5321 section 4.1.3: "user@[192.0.2.1]" would relay by IP
	case strings.HasSuffix(d, "."):
		return errAddrTrailDot // "user@example.test." once slipped past domain matching
	case !validDomain(d):
		return errAddrDomain
	}
	return nil
}

// validDomain reports whether d is a host name: LDH labels of 1–63 octets (RFC 1035 section
// 2.3.1, RFC 1123 section 2.1), at most 253 octets, no trailing dot.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
