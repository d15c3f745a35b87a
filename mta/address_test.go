package mta

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	cases := []struct {
		name, in string
		want     string // "" when refused
		err      error
	}{
		{"a plain address is accepted", "user1@example.test", "user1@example.test", nil},
		{"the domain is lower-cased, the local part kept", "User.One@Example.TEST", "User.One@example.test", nil},
		{"atext specials other than % and ! are accepted", "a+tag_x-y=z'{}~@example.test", "a+tag_x-y=z'{}~@example.test", nil},
		{"the percent hack is refused", "victim%elsewhere.example@example.test", "", errAddrPercent},
		{"a bang path is refused", "elsewhere.example!victim@example.test", "", errAddrBang},
		{"a source route is refused", "@example.test:victim@elsewhere.example", "", errAddrRoute},
		{"a source route with several hops is refused", "@a.test,@b.test:victim@elsewhere.example", "", errAddrRoute},
		{"a quoted local part holding an @ (as go-smtp unquotes it) is refused", "victim@elsewhere.example@example.test", "", errAddrManyAt},
		{"a quoted local part is refused", `"victim@elsewhere.example"@example.test`, "", errAddrQuoted},
		{"a trailing dot in the domain is refused", "user1@example.test.", "", errAddrTrailDot},
		{"an address literal is refused", "user1@[192.0.2.1]", "", errAddrLiteral},
		{"an empty address is refused", "", "", errAddrEmpty},
		{"no domain is refused", "user1", "", errAddrNoAt},
		{"an empty local part is refused", "@example.test", "", errAddrRoute},
		{"a leading dot in the local part is refused", ".user@example.test", "", errAddrLocal},
		{"a trailing dot in the local part is refused", "user.@example.test", "", errAddrLocal},
		{"two dots in the local part are refused", "us..er@example.test", "", errAddrLocal},
		{"a space in the local part is refused", "us er@example.test", "", errAddrLocal},
		{"an empty domain label is refused", "user@example..test", "", errAddrDomain},
		{"a label starting with a hyphen is refused", "user@-example.test", "", errAddrDomain},
		{"an underscore in the domain is refused", "user@ex_ample.test", "", errAddrDomain},
		{"non-ASCII is refused without SMTPUTF8", "usér@example.test", "", errAddrNonASCII},
		{"a local part over 64 octets is refused", strings.Repeat("a", 65) + "@example.test", "", errAddrLocalLong},
		{"an address over 254 octets is refused", "a@" + strings.Repeat("b.", 130) + "test", "", errAddrTooLong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseAddress(c.in)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("parseAddress(%q) = %v, %v; want error %v", c.in, got, err, c.err)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("parseAddress(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}

// FuzzParseAddress checks that whatever is accepted is one local part, one '@' and a host name
// that the policy can match, with none of the relay operators in it.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"user1@example.test", "a%b@c.test", "@a:b@c", `"a@b"@c`, "a!b@c", "x@y.", "x@[1.2.3.4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAddress(s)
		if err != nil {
			return
		}
		out := a.String()
		if strings.Count(out, "@") != 1 || strings.ContainsAny(out, "%!:\",[] \r\n") {
			t.Fatalf("parseAddress(%q) accepted %q", s, out)
		}
		if !validDomain(a.Domain) || a.Domain != strings.ToLower(a.Domain) {
			t.Fatalf("parseAddress(%q) gave domain %q", s, a.Domain)
		}
	})
}
