package cronjob

import (
	"testing"
	"time"
	_ "time/tzdata" // the zone tests must not depend on the host's tzdata

	"github.com/google/go-cmp/cmp"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestScheduleNext(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec string
		loc  *time.Location
		from string
		want string // RFC3339 in UTC; "" for never
	}{
		{spec: "*/15 * * * *", from: "2025-01-01T12:07:00Z", want: "2025-01-01T12:15:00Z"},
		{spec: "*/15 * * * *", from: "2025-01-01T12:15:00Z", want: "2025-01-01T12:30:00Z"},
		{spec: "0 9 * * 1-5", from: "2025-01-03T10:00:00Z", want: "2025-01-06T09:00:00Z"},
		{spec: "0 9 * * MON-FRI", from: "2025-01-03T10:00:00Z", want: "2025-01-06T09:00:00Z"},
		{spec: "30 6-16/4 * * *", from: "2025-01-01T07:00:00Z", want: "2025-01-01T10:30:00Z"},
		{spec: "5/20 * * * *", from: "2025-01-01T07:46:00Z", want: "2025-01-01T08:05:00Z"},
		{spec: "0 0 1 jan,jul *", from: "2025-01-01T00:00:00Z", want: "2025-07-01T00:00:00Z"},
		{spec: "0 0 13 * fri", from: "2025-01-01T00:00:00Z", want: "2025-01-03T00:00:00Z"},
		{spec: "0 0 13 * *", from: "2025-01-01T00:00:00Z", want: "2025-01-13T00:00:00Z"},
		{spec: "0 0 * * ?", from: "2025-01-01T00:00:00Z", want: "2025-01-02T00:00:00Z"},
		{spec: "0 0 29 2 *", from: "2025-01-01T00:00:00Z", want: "2028-02-29T00:00:00Z"},
		{spec: "0 0 30 2 *", from: "2025-01-01T00:00:00Z", want: ""},
		{spec: "@hourly", from: "2025-01-01T12:00:00Z", want: "2025-01-01T13:00:00Z"},
		{spec: "@daily", from: "2025-01-01T12:00:00Z", want: "2025-01-02T00:00:00Z"},
		{spec: "@weekly", from: "2025-01-01T12:00:00Z", want: "2025-01-05T00:00:00Z"},
		{spec: "@monthly", from: "2025-01-01T12:00:00Z", want: "2025-02-01T00:00:00Z"},
		{spec: "@yearly", from: "2025-01-01T12:00:00Z", want: "2026-01-01T00:00:00Z"},
		{spec: "@every 90s", from: "2025-01-01T12:00:00.5Z", want: "2025-01-01T12:01:30Z"},
		{spec: "0 9 * * *", loc: ny, from: "2025-01-01T12:00:00Z", want: "2025-01-01T14:00:00Z"},
		{spec: "TZ=America/New_York 0 9 * * *", from: "2025-01-01T12:00:00Z", want: "2025-01-01T14:00:00Z"},
		{spec: "CRON_TZ=America/New_York 0 9 * * *", from: "2025-07-01T12:00:00Z", want: "2025-07-01T13:00:00Z"},
		// 02:30 does not exist on the spring-forward day; the run is skipped.
		{spec: "30 2 * * *", loc: ny, from: "2025-03-09T05:00:00Z", want: "2025-03-10T06:30:00Z"},
		// 01:30 happens twice on the fall-back day; both fire.
		{spec: "30 1 * * *", loc: ny, from: "2025-11-02T05:31:00Z", want: "2025-11-02T06:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.spec+" from "+tt.from, func(t *testing.T) {
			loc := tt.loc
			if loc == nil {
				loc = time.UTC
			}
			s, err := parseSchedule(tt.spec, loc)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := s.next(utc(tt.from))
			var gotStr string
			if !got.IsZero() {
				gotStr = got.UTC().Format(time.RFC3339)
			}
			if diff := cmp.Diff(tt.want, gotStr); diff != "" {
				t.Errorf("next (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, spec := range []string{
		"60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "0 0 * * 7",
		"* * * *", "* * * * * *", "5-1 * * * *", "*/0 * * * *", "a * * * *",
		"@fortnightly", "@every -1s", "@every soon", "TZ=Nowhere/Land * * * * *", "TZ=UTC",
	} {
		if _, err := parseSchedule(spec, time.UTC); err == nil {
			t.Errorf("parseSchedule(%q) succeeded, want an error", spec)
		}
	}
}
