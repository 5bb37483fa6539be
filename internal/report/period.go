package report

import (
	"fmt"
	"time"
)

// MaxPeriod bounds the period one report covers: a year, with its leap
// day.
const MaxPeriod = 366 * 24 * time.Hour

// earliest is the earliest start of a period: attest records nothing
// older, and OSCAL's date-times begin later than Go's.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// PeriodError names the bound of a period that is wrong, and why.
type PeriodError struct {
	Field  string // "from" or "to"
	Reason string
}

func (e *PeriodError) Error() string { return e.Reason }

// Period settles the period [from, to) a report covers at time now: from
// before to, at most MaxPeriod long, and begun by now. An end after now
// is cut to now, since no control has stood any later: a report of the
// future would read every control as without evidence.
func Period(from, to, now time.Time) (time.Time, time.Time, error) {
	from, to, now = from.UTC(), to.UTC(), now.UTC()
	switch {
	case !from.Before(to):
		return from, to, &PeriodError{"to", "to must be after from"}
	case to.Sub(from) > MaxPeriod:
		return from, to, &PeriodError{"to", "a report covers at most 366 days"}
	case from.Before(earliest):
		return from, to, &PeriodError{"from", "from is before 2000, earlier than any record attest keeps"}
	case !from.Before(now):
		return from, to, &PeriodError{"from", fmt.Sprintf("the period has not begun: from is after now (%s)",
			now.Format(time.RFC3339))}
	}
	if to.After(now) {
		to = now
	}
	return from, to, nil
}
