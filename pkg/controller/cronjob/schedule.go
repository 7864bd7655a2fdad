package cronjob

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// schedule yields the activation times of a cron schedule.
type schedule interface {
	// next returns the first activation strictly after t, or the zero time
	// if there is none within searchYears of t.
	next(t time.Time) time.Time
}

// searchYears bounds the search for the next activation, so a schedule that
// can never fire (February 30) ends the search instead of looping.
const searchYears = 5

// field is one cron field's bounds and value names.
type field struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	minuteField = field{name: "minute", min: 0, max: 59}
	hourField   = field{name: "hour", min: 0, max: 23}
	domField    = field{name: "day of month", min: 1, max: 31}
	monthField  = field{name: "month", min: 1, max: 12, names: map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}}
	dowField = field{name: "day of week", min: 0, max: 6, names: map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}}
)

// descriptors are the predefined schedules, as the robfig/cron parser
// upstream uses accepts them.
var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// parseSchedule parses a standard 5-field cron spec (minute hour
// day-of-month month day-of-week, with lists, ranges, steps and month/day
// names), one of the @descriptors, or "@every <duration>". A leading
// "TZ=<zone> " or "CRON_TZ=<zone> " selects the zone; otherwise times are
// evaluated in loc. The grammar is that of robfig/cron's ParseStandard,
// which upstream's controller uses, so schedules fire at the same times.
func parseSchedule(spec string, loc *time.Location) (schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		i := strings.IndexAny(spec, " \t")
		if i < 0 {
			return nil, fmt.Errorf("missing schedule after time zone in %q", spec)
		}
		zone := spec[strings.Index(spec, "=")+1 : i]
		l, err := time.LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("provided bad location %s: %w", zone, err)
		}
		loc, spec = l, strings.TrimSpace(spec[i:])
	}
	if strings.HasPrefix(spec, "@every ") {
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(spec, "@every ")))
		if err != nil {
			return nil, fmt.Errorf("failed to parse duration %s: %w", spec, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("@every needs a positive duration, got %s", d)
		}
		// Like robfig/cron: whole seconds, at least one.
		d = max(d.Truncate(time.Second), time.Second)
		return everySchedule{every: d}, nil
	}
	if strings.HasPrefix(spec, "@") {
		d, ok := descriptors[strings.ToLower(spec)]
		if !ok {
			return nil, fmt.Errorf("unrecognized descriptor: %s", spec)
		}
		spec = d
	}
	parts := strings.Fields(spec)
	if len(parts) != 5 {
		return nil, fmt.Errorf("expected exactly 5 fields, found %d: %s", len(parts), spec)
	}
	s := cronSchedule{loc: loc}
	var err error
	if s.minute, _, err = parseField(parts[0], minuteField); err != nil {
		return nil, err
	}
	if s.hour, _, err = parseField(parts[1], hourField); err != nil {
		return nil, err
	}
	if s.dom, s.domStar, err = parseField(parts[2], domField); err != nil {
		return nil, err
	}
	if s.month, _, err = parseField(parts[3], monthField); err != nil {
		return nil, err
	}
	if s.dow, s.dowStar, err = parseField(parts[4], dowField); err != nil {
		return nil, err
	}
	return s, nil
}

// parseField returns the bit set of the values field expr allows and
// whether it is an unrestricted "*" or "?" (which changes how day-of-month
// and day-of-week combine).
func parseField(expr string, f field) (uint64, bool, error) {
	var bits uint64
	star := false
	for _, part := range strings.Split(expr, ",") {
		b, s, err := parseRange(part, f)
		if err != nil {
			return 0, false, fmt.Errorf("%s field %q: %w", f.name, expr, err)
		}
		bits |= b
		star = star || s
	}
	return bits, star, nil
}

func parseRange(expr string, f field) (uint64, bool, error) {
	rangePart, stepPart, hasStep := strings.Cut(expr, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepPart)
		if err != nil || n <= 0 {
			return 0, false, fmt.Errorf("invalid step %q", stepPart)
		}
		step = n
	}
	var start, end int
	star := false
	switch {
	case rangePart == "*" || rangePart == "?":
		start, end, star = f.min, f.max, step == 1
	default:
		lo, hi, isRange := strings.Cut(rangePart, "-")
		var err error
		if start, err = parseValue(lo, f); err != nil {
			return 0, false, err
		}
		switch {
		case isRange:
			if end, err = parseValue(hi, f); err != nil {
				return 0, false, err
			}
		case hasStep:
			// "N/step" means "N-max/step".
			end = f.max
		default:
			end = start
		}
	}
	if start < f.min || end > f.max {
		return 0, false, fmt.Errorf("%d-%d is outside %d-%d", start, end, f.min, f.max)
	}
	if start > end {
		return 0, false, fmt.Errorf("beginning of range (%d) beyond end of range (%d)", start, end)
	}
	var bits uint64
	for v := start; v <= end; v += step {
		bits |= 1 << uint(v)
	}
	return bits, star, nil
}

func parseValue(s string, f field) (int, error) {
	if v, ok := f.names[strings.ToLower(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("invalid value %q", s)
	}
	return v, nil
}

// cronSchedule is a parsed 5-field spec evaluated in loc.
type cronSchedule struct {
	minute, hour, dom, month, dow uint64
	domStar, dowStar              bool
	loc                           *time.Location
}

func (s cronSchedule) next(t time.Time) time.Time {
	t = t.In(s.loc)
	// The first whole minute strictly after t. Truncating absolute time is
	// exact because every zone's offset is a whole number of minutes.
	t = t.Truncate(time.Minute).Add(time.Minute)
	limit := t.Year() + searchYears
	for t.Year() <= limit {
		switch {
		case s.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, s.loc)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, s.loc)
		case s.hour&(1<<uint(t.Hour())) == 0:
			// Add, not time.Date: across a DST fall-back the wall-clock hour
			// repeats, and time.Date would skip the repetition.
			t = t.Add(time.Duration(60-t.Minute()) * time.Minute)
		case s.minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

// dayMatches applies cron's day rule: when either day field is "*", both
// must match; otherwise either may.
func (s cronSchedule) dayMatches(t time.Time) bool {
	domMatch := s.dom&(1<<uint(t.Day())) != 0
	dowMatch := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// everySchedule fires at a constant interval ("@every 90s").
type everySchedule struct{ every time.Duration }

func (s everySchedule) next(t time.Time) time.Time {
	// Like robfig/cron: round down to the second, then add the interval.
	return t.Add(s.every - time.Duration(t.Nanosecond()))
}

var errNeverFires = errors.New("schedule does not fire within the next years")
