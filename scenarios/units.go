package scenarios

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The pure text parsers of the format. They know nothing of YAML nodes;
// their errors are completed with a key and a position by values.go.
//
// Numbers are plain decimals ("2", "0.5", ".5"): no exponents, hex, "inf" or
// "nan", which would be surprising in a load description and break
// comparisons.

// Bounds on single values. They only stop absurd input (a typo of several
// zeros) before it reaches the simulator.
const (
	maxDuration = 3650 * 24 * time.Hour // ten years
	maxSize     = 1 << 30               // 1 GiB: no mail is larger
	maxRate     = 1e6                   // sessions per second
)

var (
	numberPrefix = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)`)
	realNumber   = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)$`)
	wholeNumber  = regexp.MustCompile(`^[+-]?\d+$`)
	exponent     = regexp.MustCompile(`^[eE][+-]?\d`)
	multiUnit    = regexp.MustCompile(`^(ms|s|m|h|d)[\d.]`) // "h30m" of "1h30m"
)

var durationUnits = map[string]time.Duration{
	"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour,
}

var sizeUnits = map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20}

var rateUnits = map[string]float64{"s": 1, "m": 60, "h": 3600}

// splitNumber splits "2.5KiB" into 2.5 and "KiB".
func splitNumber(s string) (float64, string, error) {
	s = strings.TrimSpace(s)
	num := numberPrefix.FindString(s)
	if num == "" {
		return 0, "", fmt.Errorf("%q does not start with a number", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, "", fmt.Errorf("%q is too large", s)
	}
	rest := strings.TrimSpace(s[len(num):])
	if exponent.MatchString(rest) {
		return 0, "", fmt.Errorf("%q: write the number out in full, without an exponent", s)
	}
	return f, rest, nil
}

func parseReal(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if !realNumber.MatchString(s) {
		return 0, fmt.Errorf("%q is not a plain number (like 1 or 0.5)", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return f, nil
}

func parseWhole(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if !wholeNumber.MatchString(s) {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v, nil
}

// parseInt is parseWhole limited to int32, so that sums and products of
// counts cannot overflow an int in the simulator.
func parseInt(s string) (int, error) {
	v, err := parseWhole(s)
	if err == nil && (v > math.MaxInt32 || v < math.MinInt32) {
		err = fmt.Errorf("%q is too large", strings.TrimSpace(s))
	}
	return int(v), err
}

// parseDuration reads one number with one unit: "500ms", "1.5s", "3d".
// Unlike time.ParseDuration it knows days and refuses "1h30m", which reads
// ambiguously next to ranges like "1h..2h".
func parseDuration(s string) (time.Duration, error) {
	f, unit, err := splitNumber(s)
	if err != nil {
		return 0, err
	}
	u, ok := durationUnits[unit]
	switch {
	case unit == "":
		return 0, fmt.Errorf("%q has no unit; durations need one of ms, s, m, h, d, e.g. %ss",
			strings.TrimSpace(s), strings.TrimSpace(s))
	case !ok && multiUnit.MatchString(unit):
		return 0, fmt.Errorf("%q has more than one unit; write one number and one unit (90m, not 1h30m)",
			strings.TrimSpace(s))
	case !ok:
		return 0, fmt.Errorf("%q has unknown unit %q; durations use ms, s, m, h or d",
			strings.TrimSpace(s), unit)
	}
	ns := f * float64(u)
	if math.Abs(ns) > float64(maxDuration) {
		return 0, fmt.Errorf("%q is longer than 3650d", strings.TrimSpace(s))
	}
	return time.Duration(math.Round(ns)), nil
}

// parseSize reads bytes with a unit: "512B", "2KiB", "1.5MiB".
func parseSize(s string) (float64, error) {
	f, unit, err := splitNumber(s)
	if err != nil {
		return 0, err
	}
	u, ok := sizeUnits[unit]
	switch {
	case unit == "":
		return 0, fmt.Errorf("%q has no unit; sizes need one of B, KiB, MiB, e.g. %sB",
			strings.TrimSpace(s), strings.TrimSpace(s))
	case !ok:
		return 0, fmt.Errorf("%q has unknown unit %q; sizes use B, KiB or MiB (1 KiB = 1024 B)",
			strings.TrimSpace(s), unit)
	case math.Abs(f*u) > maxSize:
		return 0, fmt.Errorf("%q is larger than 1024MiB", strings.TrimSpace(s))
	}
	return f * u, nil
}

// parseRate reads sessions per unit of time ("2/s", "0.5/s", "30/m") and
// returns sessions per second.
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num, per, found := strings.Cut(s, "/")
	if !found {
		if _, err := parseReal(s); err == nil {
			return 0, fmt.Errorf("%q has no unit; rates are sessions per s, m or h, e.g. %s/s", s, s)
		}
		return 0, fmt.Errorf("%q is not a rate; write N/s, N/m or N/h, e.g. 2/s", s)
	}
	f, err := parseReal(num)
	if err != nil {
		return 0, fmt.Errorf("%q: %v before the /", s, err)
	}
	u, ok := rateUnits[strings.TrimSpace(per)]
	if !ok {
		return 0, fmt.Errorf("%q: rates are per s, m or h (write 30/m, not 1/2s)", s)
	}
	if f/u > maxRate {
		return 0, fmt.Errorf("%q is more than %g sessions a second", s, float64(maxRate))
	}
	return f / u, nil
}

// parseDrip reads a data rate, bytes per time: "1B/2s", "10B/s".
func parseDrip(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	size, per, found := strings.Cut(s, "/")
	if !found {
		return Rate{}, fmt.Errorf("%q is not a data rate; write bytes per time, e.g. 1B/2s", s)
	}
	b, err := parseSize(size)
	if err != nil {
		return Rate{}, fmt.Errorf("%q: %v", s, err)
	}
	if b < 1 || b != math.Trunc(b) {
		return Rate{}, fmt.Errorf("%q: the amount must be a whole number of bytes, at least 1B", s)
	}
	d, err := parsePer(per)
	if err != nil {
		return Rate{}, fmt.Errorf("%q: %v", s, err)
	}
	if d <= 0 {
		return Rate{}, fmt.Errorf("%q: the time after / must be longer than 0", s)
	}
	return Rate{BytesPer: int(b), Per: d}, nil
}

// parsePer reads the part after "/" of a drip: a duration, or a bare unit
// meaning one of it ("B/s").
func parsePer(s string) (time.Duration, error) {
	if u, ok := durationUnits[strings.TrimSpace(s)]; ok {
		return u, nil
	}
	return parseDuration(s)
}

// parseRange reads "v" or "lo..hi" (inclusive) with one for each side.
func parseRange[T cmp.Ordered](s string, one func(string) (T, error)) (lo, hi T, err error) {
	loText, hiText, isRange := strings.Cut(s, "..")
	if lo, err = one(loText); err != nil {
		return lo, hi, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = one(hiText); err != nil {
		return lo, hi, err
	}
	if lo > hi {
		return lo, hi, fmt.Errorf("range %q runs backwards; write %s..%s",
			strings.TrimSpace(s), strings.TrimSpace(hiText), strings.TrimSpace(loText))
	}
	return lo, hi, nil
}
