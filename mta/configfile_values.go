package mta

import (
	"bufio"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/yamldoc"
)

// Readers of the MTA's values, on top of yamldoc's. Each returns a plain error for the value
// as a whole, or yamldoc.At for a node inside it.

func parseName(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err == nil {
		err = events.ValidName(s)
	}
	return s, err
}

func parseHostname(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err == nil && !validDomain(s) {
		err = fmt.Errorf("%q is not a host name (letters, digits, '-' and dots)", s)
	}
	return s, err
}

func parseHostPort(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err == nil {
		if herr := checkHostPort(s); herr != nil {
			err = fmt.Errorf("%q is not host:port (as in 127.0.0.1:25 or [::1]:25): %v", s, herr)
		}
	}
	return s, err
}

func parseDomain(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err == nil && !validDomain(s) {
		err = fmt.Errorf("%q is not a domain name", s)
	}
	return strings.ToLower(s), err
}

func parseLocalPart(n *yaml.Node) (string, error) {
	s, err := yamldoc.String(n)
	if err == nil {
		err = checkLocalPart(s)
	}
	return s, err
}

func checkLocalPart(s string) error {
	if strings.ContainsAny(s, "@ \t\"") {
		return fmt.Errorf("%q is not a local part: users are names without a domain, as in user1", s)
	}
	return nil
}

// parsePrefix reads a network (10.0.0.0/8) or one address (192.0.2.7, taken as /32 or /128).
func parsePrefix(n *yaml.Node) (netip.Prefix, error) {
	s, err := yamldoc.String(n)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not a network (10.0.0.0/8) or an address", s)
}

// positiveDuration reads a Go duration above 0. The file is told "positive" rather than
// yamldoc.MinDuration's "at least 1ns".
func positiveDuration(n *yaml.Node) (time.Duration, error) {
	d, err := yamldoc.Duration(n)
	if err == nil && d <= 0 {
		err = fmt.Errorf("must be positive, got %v", d)
	}
	return d, err
}

// parseCount reads a whole number of at least min.
func parseCount(min int) func(*yaml.Node) (int, error) { return yamldoc.Int(min, math.MaxInt) }

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// parseSize reads bytes, as a number or with a unit (B, KiB, MiB, GiB), of at least min.
func parseSize(min int64) func(*yaml.Node) (int64, error) {
	return func(n *yaml.Node) (int64, error) {
		s, err := yamldoc.String(n)
		if err != nil {
			return 0, err
		}
		num, mult := s, int64(1)
		for _, u := range sizeUnits {
			if strings.HasSuffix(s, u.suffix) {
				num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
				break
			}
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil || v > (1<<62)/mult {
			return 0, fmt.Errorf("%q is not a size: write bytes, or a whole number with B, KiB, MiB or GiB, as in \"10MiB\"", s)
		}
		if v*mult < min {
			return 0, fmt.Errorf("must be at least %d bytes, got %d", min, v*mult)
		}
		return v * mult, nil
	}
}

// readUsersFile reads valid local parts, one a line; blank lines and "#" comments are skipped.
func readUsersFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var users []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		u, _, _ := strings.Cut(sc.Text(), "#")
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if err := checkLocalPart(u); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return users, nil
}
