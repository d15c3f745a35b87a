package scenarios

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"500ms": 500 * time.Millisecond, "1.5s": 1500 * time.Millisecond, "2m": 2 * time.Minute,
		"1h": time.Hour, "3d": 72 * time.Hour, ".5s": 500 * time.Millisecond, " 10 s ": 10 * time.Second,
		"-5s": -5 * time.Second, "0s": 0, "3650d": 3650 * 24 * time.Hour,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"10": "has no unit", "1h30m": "more than one unit", "5sec": `unknown unit "sec"`,
		"": "does not start with a number", "1e3s": "without an exponent", "3651d": "longer than 3650d",
		"inf": "does not start", "0x10s": `unknown unit "x10s"`,
	} {
		if _, err := parseDuration(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseDuration(%q) error = %v; want one containing %q", in, err, msg)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]float64{"512B": 512, "2KiB": 2048, "1.5MiB": 1.5 * (1 << 20), "1024MiB": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"2048": "has no unit", "2KB": "B, KiB or MiB", "2GiB": `unknown unit "GiB"`,
		"2048MiB": "larger than", "k": "number",
	} {
		if _, err := parseSize(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseSize(%q) error = %v; want one containing %q", in, err, msg)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"2/s": 2, "0.5/s": 0.5, "30/m": 0.5, "360/h": 0.1, "0/s": 0, "-1/s": -1} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"2": "has no unit", "2/d": "per s, m or h", "1/2s": "per s, m or h",
		"x/s": "before the /", "fast": "not a rate",
	} {
		if _, err := parseRate(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseRate(%q) error = %v; want one containing %q", in, err, msg)
		}
	}
}

func TestParseDrip(t *testing.T) {
	for in, want := range map[string]Rate{
		"1B/2s": {1, 2 * time.Second}, "10B/s": {10, time.Second}, "1KiB/500ms": {1024, 500 * time.Millisecond},
	} {
		if got, err := parseDrip(in); err != nil || got != want {
			t.Errorf("parseDrip(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"1B": "not a data rate", "1/s": "has no unit", "0B/s": "at least 1B",
		"1B/0s": "longer than 0", "1B/-1s": "longer than 0",
	} {
		if _, err := parseDrip(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseDrip(%q) error = %v; want one containing %q", in, err, msg)
		}
	}
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string][2]int{"3": {3, 3}, "1..3": {1, 3}, " 2 .. 2 ": {2, 2}, "-1..0": {-1, 0}} {
		lo, hi, err := parseRange(in, parseInt)
		if err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("parseRange(%q) = %d, %d, %v; want %v", in, lo, hi, err, want)
		}
	}
	for in, msg := range map[string]string{
		"3..1": "runs backwards; write 1..3", "1.5": "not a whole number", "1..": "not a whole number",
		"..2": "not a whole number", "1...3": "not a whole number", "99999999999": "too large",
	} {
		if _, _, err := parseRange(in, parseInt); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseRange(%q) error = %v; want one containing %q", in, err, msg)
		}
	}
	if lo, hi, err := parseRange("2s..1m", parseDuration); err != nil || lo != 2*time.Second || hi != time.Minute {
		t.Errorf("duration range = %v, %v, %v", lo, hi, err)
	}
}
