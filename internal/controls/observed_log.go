package controls

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/auditlog"
)

func logsVerified(ctx context.Context, sc Scope) (*Result, error) {
	r := result("LOG-02", sc.Now)
	ts, err := sc.In.Tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	examined := 0
	for _, t := range ts {
		head, err := sc.In.Log.Head(ctx, sc.In.DB.Read, t.ID)
		if err != nil {
			return nil, err
		}
		if head.Size == 0 {
			continue
		}
		examined++
		res := "log:" + t.Name
		// Of verifications that finished at once, a failed one counts.
		var finished int64
		var ok bool
		var problem string
		err = sc.In.DB.Read.QueryRowContext(ctx, sc.In.DB.Rebind(`SELECT finished_at, ok, problem FROM log_verifications
			WHERE tenant_id = ? ORDER BY finished_at DESC, ok LIMIT 1`), t.ID).Scan(&finished, &ok, &problem)
		if errors.Is(err, sql.ErrNoRows) {
			// A log whose first entry is under a day old is not yet due
			// its first verification: neither a failure nor evidence.
			if first, err := sc.In.Log.Read(ctx, sc.In.DB.Read, t, 0); err == nil &&
				sc.Now.Sub(first.Event.ReceivedAt) < day {
				examined--
				r.Evidence["not_yet_due"] = append(stringsOf(r.Evidence["not_yet_due"]), res)
				continue
			}
			r.Findings = append(r.Findings, Finding{res, "has entries but was never verified"})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("controls: read verifications: %w", err)
		}
		at := micros(finished)
		switch {
		case !ok:
			r.Findings = append(r.Findings, Finding{res, "its newest verification, at " + at.Format(time.RFC3339) +
				", found it damaged: " + problem})
		case sc.Now.Sub(at) > day:
			r.Findings = append(r.Findings, Finding{res, "last verified " + at.Format(time.RFC3339) + ", over 24 hours ago"})
		}
	}
	return r.judge(examined, "run attest verify --all on attest's host, or check that serve runs (it verifies every "+
		"log twice a day); a damaged log is named with its first bad entry: restore it from a backup"), nil
}

// logState is how far a tenant's log has been archived and expired.
type logState struct {
	archived, expired int64
}

func readLogState(ctx context.Context, sc Scope, tenantID int64) (*logState, error) {
	var s logState
	err := sc.In.DB.Read.QueryRowContext(ctx, sc.In.DB.Rebind(`SELECT archived_end, expired_end FROM log_state
		WHERE tenant_id = ?`), tenantID).Scan(&s.archived, &s.expired)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("controls: read log state: %w", err)
	}
	return &s, nil
}

func expiredAfterRetention(ctx context.Context, sc Scope) (*Result, error) {
	r := result("RET-02", sc.Now)
	ts, err := sc.In.Tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	examined, expired := 0, int64(0)
	for _, t := range ts {
		st, err := readLogState(ctx, sc, t.ID)
		if err != nil {
			return nil, err
		}
		if st == nil {
			continue
		}
		examined++
		expired += st.expired
		if st.expired == 0 {
			continue
		}
		pol, err := sc.In.Log.Policy(ctx, sc.In.DB.Read, t.ID)
		if err != nil {
			return nil, err
		}
		segs, err := sc.In.Log.ArchiveSegments(ctx, sc.In.DB.Read, t)
		if err != nil {
			return nil, err
		}
		keep := time.Duration(pol.RetentionDays) * day
		covered := int64(0)
		for _, s := range segs {
			if s.First >= st.expired {
				break
			}
			covered = s.End
			// A segment is expired once its newest entry is older than the
			// retention; when it was expired is the moment that counts.
			when := s.ExpiredAt
			if when.IsZero() {
				when = sc.Now
			}
			if early := s.LastReceived.Add(keep).Sub(when); early > 0 {
				r.Findings = append(r.Findings, Finding{fmt.Sprintf("log:%s:%d-%d", t.Name, s.First, s.End),
					fmt.Sprintf("expired %s with its newest entry received %s: %d days before its %d days of retention",
						when.Format(time.RFC3339), s.LastReceived.Format(time.RFC3339), int(early/day)+1, pol.RetentionDays)})
			}
		}
		if covered < st.expired {
			r.Findings = append(r.Findings, Finding{fmt.Sprintf("log:%s:%d-%d", t.Name, covered, st.expired),
				"expired with no archive segment to say when its entries were received"})
		}
	}
	r.Evidence["expired_entries"] = expired
	return r.judge(examined, "entries deleted early cannot be brought back from the database: restore them from a "+
		"backup of the data directory, and find how retention ran under a shorter policy (GET /api/v1/retention)"), nil
}

func expiredWereArchived(ctx context.Context, sc Scope) (*Result, error) {
	r := result("RET-03", sc.Now)
	ts, err := sc.In.Tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	examined := 0
	for _, t := range ts {
		st, err := readLogState(ctx, sc, t.ID)
		if err != nil {
			return nil, err
		}
		if st == nil {
			continue
		}
		examined++
		if st.expired > st.archived {
			r.Findings = append(r.Findings, Finding{"log:" + t.Name, fmt.Sprintf("expired up to entry %d but archived "+
				"only up to %d", st.expired, st.archived)})
		}
		segs, err := sc.In.Log.ArchiveSegments(ctx, sc.In.DB.Read, t)
		if err != nil {
			return nil, err
		}
		// The segments must tile the expired range from the first entry on.
		next := int64(0)
		for _, s := range segs {
			if next >= st.expired {
				break
			}
			if s.First != next {
				break
			}
			next = s.End
		}
		if next < st.expired {
			r.Findings = append(r.Findings, Finding{fmt.Sprintf("log:%s:%d-%d", t.Name, next, st.expired),
				"expired without an archive segment"})
		}
	}
	return r.judge(examined, "restore the listed ranges from a backup of the data directory and archive them "+
		"(serve's retention job archives before it expires), then find what deleted them unarchived"), nil
}

func signingKeyFresh(ctx context.Context, sc Scope) (*Result, error) {
	r := result("KEY-01", sc.Now)
	hist, err := sc.In.Log.KeyHistory(ctx, sc.In.DB.Read)
	if err != nil {
		return nil, err
	}
	cur := sc.In.SigningKey.ID
	r.Evidence["key_id"] = cur
	found := false
	for _, k := range hist {
		if !k.RetiredAt.IsZero() {
			continue
		}
		if k.ID != cur {
			r.Findings = append(r.Findings, Finding{"signing_key:" + k.ID, "unretired, yet not the key this instance signs with"})
			continue
		}
		found = true
		r.Evidence["created_at"] = k.CreatedAt.Format(time.RFC3339)
		if age := sc.Now.Sub(k.CreatedAt); age > year {
			r.Findings = append(r.Findings, Finding{"signing_key:" + k.ID, fmt.Sprintf("signs checkpoints %d days after "+
				"its creation, more than 365", int(age/day))})
		}
	}
	if !found {
		r.Findings = append(r.Findings, Finding{"signing_key:" + cur, "missing from the key history"})
	}
	// attest has no key rotation: attest verify trusts only the key in the
	// data directory, so a replaced key would leave every checkpoint signed
	// before unverifiable. The remedy says so rather than name a way that
	// breaks verification.
	return r.judge(len(hist), "attest cannot rotate its log signing key yet: replacing log-signing.key in the data "+
		"directory would leave every earlier checkpoint unverifiable. Record an approved exception for KEY-01 with "+
		"the compensating control (the key file readable by attest alone, offline backups) until rotation exists"), nil
}

func backupRecent(ctx context.Context, sc Scope) (*Result, error) {
	r := result("BAK-01", sc.Now)
	op, err := sc.In.Operator(ctx)
	if err != nil {
		return nil, err
	}
	f := auditlog.Filter{Action: "instance.backup.create", Limit: 1000}
	n := 0
	var newest, failed time.Time
	for {
		page, err := sc.In.Log.Query(ctx, op, f)
		if err != nil {
			return nil, fmt.Errorf("controls: read the trail: %w", err)
		}
		for _, rec := range page.Items {
			n++
			at := rec.Event.OccurredAt
			switch {
			case rec.Event.Outcome.Result != "success":
				failed = maxTime(failed, at)
			case at.After(newest):
				newest = at
			}
		}
		// Newest first: the first success found is the newest.
		if page.Next == "" || !newest.IsZero() {
			break
		}
		f.Cursor = page.Next
	}
	if !failed.IsZero() {
		r.Evidence["newest_failure"] = failed.Format(time.RFC3339)
	}
	switch {
	case n > 0 && newest.IsZero():
		r.Findings = append(r.Findings, Finding{"backups", "none succeeded"})
	case n > 0 && sc.Now.Sub(newest) > day:
		r.Evidence["newest_success"] = newest.Format(time.RFC3339)
		r.Findings = append(r.Findings, Finding{"backups", "the newest successful backup is from " +
			newest.Format(time.RFC3339) + ", over 24 hours ago"})
	case n > 0:
		r.Evidence["newest_success"] = newest.Format(time.RFC3339)
	}
	return r.judge(n, "take a backup on attest's host (attest backup --out DIR) and schedule it daily, with a cron "+
		"job or a systemd timer; on PostgreSQL also back up the database with its own tools"), nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// stringsOf returns v as the list of strings it holds, or none.
func stringsOf(v any) []string {
	s, _ := v.([]string)
	return s
}
