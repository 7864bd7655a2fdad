package validation

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseSchedule checks a CronJob schedule the way upstream's parser
// (github.com/robfig/cron/v3, ParseStandard) does, with the same error
// texts: five fields (minute hour day-of-month month day-of-week) or a
// descriptor (@yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly, @every <duration>). A leading TZ=/CRON_TZ= is skipped here; the
// caller rejects it separately, as upstream does.
func parseSchedule(spec string) error {
	if spec == "" {
		return fmt.Errorf("empty spec string")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		i := strings.Index(spec, " ")
		if i < 0 {
			return fmt.Errorf("expected exactly 5 fields, found 0: []")
		}
		spec = strings.TrimSpace(spec[i:])
	}
	if strings.HasPrefix(spec, "@") {
		return parseDescriptor(spec)
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return fmt.Errorf("expected exactly 5 fields, found %d: %s", len(fields), fields)
	}
	for i, f := range fields {
		if err := parseField(f, cronBounds[i]); err != nil {
			return err
		}
	}
	return nil
}

func parseDescriptor(d string) error {
	switch d {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return nil
	}
	const every = "@every "
	if strings.HasPrefix(d, every) {
		if _, err := time.ParseDuration(d[len(every):]); err != nil {
			return fmt.Errorf("failed to parse duration %s: %s", d, err)
		}
		return nil
	}
	return fmt.Errorf("unrecognized descriptor: %s", d)
}

type cronBound struct {
	min, max int
	names    map[string]int
}

// cronBounds are the five standard fields in order.
var cronBounds = [5]cronBound{
	{0, 59, nil},
	{0, 23, nil},
	{1, 31, nil},
	{1, 12, map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}},
	{0, 6, map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}},
}

// parseField parses a comma-separated list of ranges.
func parseField(f string, b cronBound) error {
	for _, r := range strings.Split(f, ",") {
		if err := parseRange(r, b); err != nil {
			return err
		}
	}
	return nil
}

// parseRange parses "*", "?", "N", "N-M", each optionally followed by "/step".
func parseRange(expr string, b cronBound) error {
	rangeAndStep := strings.Split(expr, "/")
	lowAndHigh := strings.Split(rangeAndStep[0], "-")
	singleDigit := len(lowAndHigh) == 1

	start, end, step := 0, 0, 1
	if lowAndHigh[0] == "*" || lowAndHigh[0] == "?" {
		start, end = b.min, b.max
	} else {
		var err error
		if start, err = parseIntOrName(lowAndHigh[0], b.names); err != nil {
			return err
		}
		switch len(lowAndHigh) {
		case 1:
			end = start
		case 2:
			if end, err = parseIntOrName(lowAndHigh[1], b.names); err != nil {
				return err
			}
		default:
			return fmt.Errorf("too many hyphens: %s", expr)
		}
	}

	switch len(rangeAndStep) {
	case 1:
	case 2:
		var err error
		if step, err = mustParseInt(rangeAndStep[1]); err != nil {
			return err
		}
		// "N/step" means "N-max/step".
		if singleDigit {
			end = b.max
		}
	default:
		return fmt.Errorf("too many slashes: %s", expr)
	}

	if start < b.min {
		return fmt.Errorf("beginning of range (%d) below minimum (%d): %s", start, b.min, expr)
	}
	if end > b.max {
		return fmt.Errorf("end of range (%d) above maximum (%d): %s", end, b.max, expr)
	}
	if start > end {
		return fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", start, end, expr)
	}
	if step == 0 {
		return fmt.Errorf("step of range should be a positive number: %s", expr)
	}
	return nil
}

func parseIntOrName(expr string, names map[string]int) (int, error) {
	if names != nil {
		if v, ok := names[strings.ToLower(expr)]; ok {
			return v, nil
		}
	}
	return mustParseInt(expr)
}

func mustParseInt(expr string) (int, error) {
	num, err := strconv.Atoi(expr)
	if err != nil {
		return 0, fmt.Errorf("failed to parse int from %s: %s", expr, err)
	}
	if num < 0 {
		return 0, fmt.Errorf("negative number (%d) not allowed: %s", num, expr)
	}
	return num, nil
}
