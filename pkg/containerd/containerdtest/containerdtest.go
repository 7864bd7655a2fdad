// Package containerdtest holds helpers for tests that run a private
// containerd: free pod ranges and unique names. Imported by tests only.
package containerdtest

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// RandomHex returns n random bytes, hex encoded: unique bridge and
// directory names for parallel test runs.
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// FreeCIDR picks a random 10.<second>.x.0/24 that no route on the host
// overlaps, so a test's CNI bridge never shadows a real network. Tests in
// different packages pass different second octets, so that packages running
// in parallel cannot pick the same range.
func FreeCIDR(t testing.TB, second byte) netip.Prefix {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route", "show").Output()
	if err != nil {
		t.Fatalf("listing routes: %v", err)
	}
	var used []netip.Prefix
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		if !strings.Contains(f[0], "/") {
			f[0] += "/32"
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			used = append(used, p)
		}
	}
	b := make([]byte, 1)
	for range 64 {
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, second, b[0], 0}), 24)
		free := true
		for _, u := range used {
			free = free && !u.Overlaps(cand)
		}
		if free {
			return cand
		}
	}
	t.Fatalf("no free /24 in 10.%d.0.0/16", second)
	return netip.Prefix{}
}
