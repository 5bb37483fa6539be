package controls

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tree"
	"github.com/nyaruka/phonenumbers"
)

// privacyScan is how many of the newest entries PRV-01 reads.
const privacyScan = 2000

var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	// phoneCandidate finds runs of digits written the way phone numbers
	// are: an optional +, groups split by spaces, dots, dashes or
	// brackets, and an optional extension. libphonenumber then decides.
	phoneCandidate = regexp.MustCompile(`\+?(?:\(\d{1,4}\)|\d)[\d ().-]{4,22}\d(?: ?x\d{1,5})?`)
	// nanpPattern is a North American number in its usual layouts.
	nanpPattern = regexp.MustCompile(`^(?:1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}$`)
	// phoneRegions are tried, in order, for a number written in national
	// form, with its trunk prefix 0.
	phoneRegions = []string{"GB", "DE", "FR", "IT", "ES", "NL", "SE", "AU", "CH", "IN", "BR"}
)

// phoneFields are the fields that may hold a phone number as text.
// Identifiers and times are left out: long digit runs are normal there.
var phoneFields = []string{event.PathActorName, "actor.id", event.PathTargetName, "target.id", "outcome.reason",
	event.PathRequestPath, event.PathDetails, event.PathOriginal, "data.fields"}

// FindPersonal names the kind of personal value it sees in s, an email
// address or a phone number, or answers empty.
func FindPersonal(s string) string {
	if kind := findEmail(s); kind != "" {
		return kind
	}
	return findPhone(s)
}

func findEmail(s string) string {
	if strings.IndexByte(s, '@') >= 0 && emailPattern.MatchString(s) {
		return "an email address"
	}
	return ""
}

// findPhone reports a phone number in s. It favours precision over
// recall: a number counts when written in international form or in a
// North American layout, with a length libphonenumber finds possible, or
// in a national form with its trunk prefix and groups, in a range
// libphonenumber finds valid. Local numbers without an area code, and
// bare digit runs, are not reported: ids and amounts look the same.
func findPhone(s string) string {
	for _, loc := range phoneCandidate.FindAllStringIndex(s, -1) {
		if bounded(s, loc[0], loc[1]) && isPhone(s[loc[0]:loc[1]]) {
			return "a phone number"
		}
	}
	return ""
}

// bounded reports whether s[i:j] stands alone: not inside a longer word,
// number or hyphenated token, such as an id or a hash.
func bounded(s string, i, j int) bool {
	joined := func(r byte) bool {
		return r < 0x80 && (unicode.IsLetter(rune(r)) || unicode.IsDigit(rune(r)) || r == '_' || r == '-' || r == '.')
	}
	return (i == 0 || !joined(s[i-1])) && (j == len(s) || !joined(s[j]) || s[j] == '.' && j+1 == len(s))
}

func isPhone(c string) bool {
	c = strings.TrimRight(c, " .-(")
	if x := strings.IndexByte(c, 'x'); x >= 0 {
		c = strings.TrimRight(c[:x], " ")
	}
	digits := 0
	for _, r := range c {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits < 7 || digits > 15 {
		return false
	}
	// A layout that only phone numbers have needs a possible number: the
	// right length for its country. A looser one needs a valid number,
	// one in a range its country assigns.
	possible := func(region string) bool {
		n, err := phonenumbers.Parse(c, region)
		return err == nil && phonenumbers.IsPossibleNumber(n)
	}
	valid := func(region string) bool {
		n, err := phonenumbers.Parse(c, region)
		return err == nil && phonenumbers.IsValidNumber(n)
	}
	switch {
	case c[0] == '+':
		return possible("ZZ")
	case nanpPattern.MatchString(c):
		return possible("US")
	case (c[0] == '0' || strings.HasPrefix(c, "(0")) && strings.ContainsAny(c, " .-()"):
		return slices.ContainsFunc(phoneRegions, valid)
	}
	return false
}

// publicFields lists the text of an event read from its leaf, by path:
// the personal paths hold nothing there, only their commitments.
func publicFields(ev *event.Event) map[string]string {
	m := map[string]string{"id": ev.ID, "tenant": ev.Tenant, "source.name": ev.Source.Name, "source.host": ev.Source.Host,
		"source.version": ev.Source.Version, "actor.type": ev.Actor.Type, "actor.id": ev.Actor.ID,
		event.PathActorName: ev.Actor.Name, event.PathActorEmail: ev.Actor.Email, event.PathActorIP: ev.Actor.IP,
		event.PathActorUserAgent: ev.Actor.UserAgent, event.PathActorSessionID: ev.Actor.SessionID,
		"actor.auth.method": ev.Actor.Auth.Method, "action": ev.Action, "category": ev.Category, "target.type": ev.Target.Type,
		"target.id": ev.Target.ID, event.PathTargetName: ev.Target.Name, "outcome.reason": ev.Outcome.Reason,
		"request.id": ev.Request.ID, "request.method": ev.Request.Method, event.PathRequestPath: ev.Request.Path,
		"data.classification": ev.Data.Classification, "data.fields": strings.Join(ev.Data.Fields, " ")}
	for _, j := range []struct {
		path string
		v    []byte
	}{{event.PathDetails, ev.Details}, {event.PathOriginal, ev.Original}} {
		if len(j.v) == 0 {
			continue
		}
		var v any
		if json.Unmarshal(j.v, &v) == nil {
			var b strings.Builder
			jsonStrings(v, &b)
			m[j.path] = b.String()
		}
	}
	return m
}

// jsonStrings writes every string of a JSON value, keys and values, one
// a line.
func jsonStrings(v any, b *strings.Builder) {
	switch v := v.(type) {
	case string:
		b.WriteString(v)
		b.WriteByte('\n')
	case []any:
		for _, e := range v {
			jsonStrings(e, b)
		}
	case map[string]any:
		for k, e := range v {
			b.WriteString(k)
			b.WriteByte('\n')
			jsonStrings(e, b)
		}
	}
}

func noClearPersonalData(ctx context.Context, sc Scope) (*Result, error) {
	r := result("PRV-01", sc.Now)
	head, err := sc.In.Log.Head(ctx, sc.In.DB.Read, sc.Tenant.ID)
	if err != nil {
		return nil, err
	}
	start := max(head.Expired, head.Size-privacyScan)
	examined := 0
	for idx := start / tree.TileWidth; idx*tree.TileWidth < head.Size; idx++ {
		leaves, err := sc.In.Log.BundleLeaves(ctx, sc.In.DB.Read, sc.Tenant, idx)
		if err != nil {
			return nil, fmt.Errorf("controls: read the trail: %w", err)
		}
		for i, leaf := range leaves {
			seq := idx*tree.TileWidth + int64(i)
			if seq < start || seq >= head.Size {
				continue
			}
			examined++
			ev, _, err := event.DecodeLeaf(leaf)
			if err != nil {
				r.Findings = append(r.Findings, Finding{fmt.Sprintf("event:%d", seq), "its stored leaf does not decode: " +
					"run attest verify"})
				continue
			}
			r.Findings = append(r.Findings, clearPersonal(seq, ev)...)
		}
	}
	r.Evidence["scanned_from"] = start
	r.Evidence["scanned_to"] = head.Size
	return r.judge(examined, "declare the listed fields personal (attest serve --personal-fields) so that new events "+
		"commit to them, and fix the producer that put personal data there; what is in the log stays, and erasing "+
		"its subject does not remove it"), nil
}

// clearPersonal lists the fields of the event at seq that hold an email
// address or a phone number in clear.
func clearPersonal(seq int64, ev *event.Event) []Finding {
	fields := publicFields(ev)
	paths := make([]string, 0, len(fields))
	for p := range fields {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var out []Finding
	for _, p := range paths {
		kind := findEmail(fields[p])
		if kind == "" && slices.Contains(phoneFields, p) {
			kind = findPhone(fields[p])
		}
		if kind != "" {
			out = append(out, Finding{fmt.Sprintf("event:%d", seq), kind + " in clear in " + p})
		}
	}
	return out
}

func erasedKeysDestroyed(ctx context.Context, sc Scope) (*Result, error) {
	r := result("PRV-02", sc.Now)
	rows, err := sc.In.DB.Read.QueryContext(ctx, sc.In.DB.Rebind(`SELECT e.id, e.subject, COUNT(s.generation)
		FROM erasures e LEFT JOIN subjects s ON s.tenant_id = e.tenant_id AND s.subject = e.subject
		AND s.created_at <= e.erased_at AND s.wrapped_key IS NOT NULL
		WHERE e.tenant_id = ? GROUP BY e.id, e.subject ORDER BY e.id`), sc.Tenant.ID)
	if err != nil {
		return nil, fmt.Errorf("controls: read erasures: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, live int64
		var subject string
		if err := rows.Scan(&id, &subject, &live); err != nil {
			return nil, fmt.Errorf("controls: read erasures: %w", err)
		}
		n++
		if live > 0 {
			r.Findings = append(r.Findings, Finding{fmt.Sprintf("erasure:%d", id), fmt.Sprintf("%d of the subject's keys "+
				"from before the erasure still exist", live)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("controls: read erasures: %w", err)
	}
	return r.judge(n, "erase the subject again (POST /api/v1/privacy/erasure, or attest subject erase), which destroys "+
		"every key it still has, and find how a key outlived its erasure"), nil
}
