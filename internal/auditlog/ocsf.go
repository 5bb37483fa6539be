package auditlog

import (
	"encoding/base64"
	"slices"
	"strings"
	"time"
)

// FormatOCSF exports events as OCSF 1.5.0 events, one a line.
const FormatOCSF = "ocsf"

// OCSFVersion is the version of the Open Cybersecurity Schema Framework the
// export follows.
const OCSFVersion = "1.5.0"

// The OCSF classes events map to: authentications to Authentication,
// changes to users, roles, credentials and their policies to Account
// Change, and every other action, an API call of some service, to API
// Activity.
const (
	ocsfAccountChange  = 3001
	ocsfAuthentication = 3002
	ocsfAPIActivity    = 6003
)

// accountPrefixes are the dotted actions about accounts, as attest and
// the platform's services name them.
var accountPrefixes = []string{"user.", "account.", "role.", "group.", "apikey.", "credential."}

// accountWords mark an IAM operation as one on accounts.
var accountWords = []string{"user", "loginprofile", "password", "accesskey", "mfadevice", "role", "group", "policy"}

// ocsfAccountActivity returns the Account Change activity of an action,
// and false when the action does not change an account.
func ocsfAccountActivity(service, operation, action string) (ocsfActivity, bool) {
	a := strings.ToLower(action)
	op := strings.ToLower(operation)
	account := false
	if service == "iam" {
		account = slices.ContainsFunc(accountWords, func(w string) bool { return strings.Contains(op, w) })
	} else {
		account = slices.ContainsFunc(accountPrefixes, func(p string) bool { return strings.HasPrefix(a, p) })
	}
	// A read of an account changes nothing: it stays API Activity.
	if !account || ocsfAPIVerb(operation).id == 2 {
		return ocsfActivity{}, false
	}
	has := func(words ...string) bool {
		return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(a, w) })
	}
	switch {
	case has("password", "loginprofile"):
		if has("reset") {
			return ocsfActivity{4, "Password Reset"}, true
		}
		return ocsfActivity{3, "Password Change"}, true
	case has("mfa"):
		if has("deactivate", "delete", "disable", "remove") {
			return ocsfActivity{11, "MFA Factor Disable"}, true
		}
		return ocsfActivity{10, "MFA Factor Enable"}, true
	case has("policy"):
		if has("detach", "delete", "remove") {
			return ocsfActivity{8, "Detach Policy"}, true
		}
		return ocsfActivity{7, "Attach Policy"}, true
	case has("grant"):
		return ocsfActivity{7, "Attach Policy"}, true
	case has("lock"):
		return ocsfActivity{9, "Lock"}, true
	case has("disable", "deactivate", "revoke", "suspend"):
		return ocsfActivity{5, "Disable"}, true
	case has("enable", "activate"):
		return ocsfActivity{2, "Enable"}, true
	case has("create", "add", "new"):
		return ocsfActivity{1, "Create"}, true
	case has("delete", "remove"):
		return ocsfActivity{6, "Delete"}, true
	}
	return ocsfActivity{99, operation}, true
}

// ocsfActivity is an OCSF activity: its id and name.
type ocsfActivity struct {
	id   int
	name string
}

// ocsfVerbs map the verb an action starts with to its API Activity.
var ocsfVerbs = []struct {
	prefixes []string
	activity ocsfActivity
}{
	{[]string{"create", "put", "post", "add", "new", "upload", "write", "import", "ingest", "insert", "run", "start", "send"},
		ocsfActivity{1, "Create"}},
	{[]string{"get", "describe", "list", "read", "head", "query", "search", "export", "lookup", "download", "view",
		"batchget", "scan", "select", "filter", "verify"}, ocsfActivity{2, "Read"}},
	{[]string{"update", "modify", "set", "patch", "change", "edit", "rotate", "grant", "attach", "enable", "disable",
		"tag", "untag", "replace", "reset", "assign"}, ocsfActivity{3, "Update"}},
	{[]string{"delete", "remove", "revoke", "terminate", "erase", "destroy", "detach", "purge", "drop", "stop"},
		ocsfActivity{4, "Delete"}},
}

// ocsfOperation splits an action into a service and an operation: the
// part before a colon names the service ("s3:GetObject"); in a dotted
// action the last part is the operation ("transcript.read").
func ocsfOperation(action string) (service, operation string) {
	if s, op, ok := strings.Cut(action, ":"); ok {
		return s, op
	}
	if i := strings.LastIndexByte(action, '.'); i > 0 {
		return action[:i], action[i+1:]
	}
	return "", action
}

func ocsfAPIVerb(operation string) ocsfActivity {
	op := strings.ToLower(operation)
	for _, v := range ocsfVerbs {
		for _, p := range v.prefixes {
			if strings.HasPrefix(op, p) {
				return v.activity
			}
		}
	}
	return ocsfActivity{99, "Other"}
}

func ocsfLogonVerb(action string) ocsfActivity {
	_, op := ocsfOperation(action)
	a := strings.ToLower(op)
	switch {
	case strings.Contains(a, "logout"), strings.Contains(a, "logoff"), strings.Contains(a, "signout"):
		return ocsfActivity{2, "Logoff"}
	case strings.Contains(a, "login"), strings.Contains(a, "logon"), strings.Contains(a, "signin"),
		strings.Contains(a, "assumerole"), strings.Contains(a, "getsessiontoken"), strings.Contains(a, "getfederationtoken"):
		return ocsfActivity{1, "Logon"}
	}
	return ocsfActivity{99, op}
}

// ocsfEvent maps a record to an OCSF event. What OCSF has no place for
// (attest's sequence number, leaf hash, category and erased fields) goes
// under "unmapped".
func ocsfEvent(r *Record) map[string]any {
	ev := r.Event
	service, operation := ocsfOperation(ev.Action)
	class, className, categoryUID, categoryName := ocsfAPIActivity, "API Activity", 6, "Application Activity"
	act := ocsfAPIVerb(operation)
	if ev.Category == "authentication" {
		class, className, categoryUID, categoryName = ocsfAuthentication, "Authentication", 3, "Identity & Access Management"
		act = ocsfLogonVerb(ev.Action)
	} else if a, ok := ocsfAccountActivity(service, operation, ev.Action); ok {
		class, className, categoryUID, categoryName = ocsfAccountChange, "Account Change", 3, "Identity & Access Management"
		act = a
	}
	if ev.Source.Name == "cloudtrail" && service != "" {
		// CloudTrail names a service by its endpoint.
		service += ".amazonaws.com"
	}
	out := map[string]any{
		"class_uid": class, "class_name": className, "category_uid": categoryUID, "category_name": categoryName,
		"activity_id": act.id, "activity_name": act.name, "type_uid": class*100 + act.id,
		"type_name": className + ": " + act.name,
		"time":      ev.OccurredAt.UnixMilli(), "time_dt": ev.OccurredAt.UTC().Format(time.RFC3339Nano),
		"severity_id": 1, "severity": "Informational",
		"metadata": map[string]any{"version": OCSFVersion, "uid": ev.ID, "sequence": r.Sequence,
			"logged_time": ev.ReceivedAt.UnixMilli(), "tenant_uid": ev.Tenant,
			"product": omitEmpty(map[string]any{"name": ev.Source.Name, "version": ev.Source.Version,
				"vendor_name": ocsfVendor(ev.Source.Name)})},
	}
	switch ev.Outcome.Result {
	case "success":
		out["status_id"], out["status"] = 1, "Success"
	default:
		out["status_id"], out["status"] = 2, "Failure"
	}
	if ev.Outcome.Reason != "" {
		out["status_detail"] = ev.Outcome.Reason
	}
	user := omitEmpty(map[string]any{"uid": ev.Actor.ID, "name": ev.Actor.Name, "email_addr": ev.Actor.Email,
		"type": ev.Actor.Type})
	actor := map[string]any{"user": user}
	if ev.Actor.SessionID != "" {
		actor["session"] = map[string]any{"uid": ev.Actor.SessionID}
	}
	out["actor"] = actor
	switch {
	case class == ocsfAuthentication:
		out["user"] = user
	case class == ocsfAccountChange && ev.Target.Type != "":
		// The account changed is the event's target.
		out["user"] = omitEmpty(map[string]any{"uid": ev.Target.ID, "name": ev.Target.Name, "type": ev.Target.Type})
	}
	if ev.Actor.IP != "" {
		out["src_endpoint"] = map[string]any{"ip": ev.Actor.IP}
	}
	req := omitEmpty(map[string]any{"user_agent": ev.Actor.UserAgent, "uid": ev.Request.ID, "http_method": ev.Request.Method})
	if ev.Request.Path != "" {
		req["url"] = map[string]any{"path": ev.Request.Path}
	}
	if len(req) > 0 {
		out["http_request"] = req
	}
	api := map[string]any{"operation": operation}
	if service != "" {
		api["service"] = map[string]any{"name": service}
	}
	if ev.Request.ID != "" {
		api["request"] = map[string]any{"uid": ev.Request.ID}
	}
	out["api"] = api
	if ev.Target.Type != "" {
		out["resources"] = []any{omitEmpty(map[string]any{"type": ev.Target.Type, "uid": ev.Target.ID, "name": ev.Target.Name})}
	}
	unmapped := map[string]any{"attest_sequence": r.Sequence, "attest_leaf_hash": base64.StdEncoding.EncodeToString(r.LeafHash[:]),
		"attest_category": ev.Category, "attest_action": ev.Action}
	if len(r.Erased) > 0 {
		unmapped["attest_erased"] = r.Erased
	}
	out["unmapped"] = unmapped
	return out
}

// ocsfVendor names the vendor of a source's product.
func ocsfVendor(source string) string {
	switch source {
	case "cloudtrail":
		return "AWS"
	case "kubernetes":
		return "Kubernetes"
	}
	return source
}

// omitEmpty drops the empty strings of m.
func omitEmpty(m map[string]any) map[string]any {
	for k, v := range m {
		if s, ok := v.(string); ok && s == "" {
			delete(m, k)
		}
	}
	return m
}
