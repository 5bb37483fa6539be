package importer

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/event"
)

// readKubernetes reads Kubernetes audit events (audit.k8s.io Event
// objects), one per line, as the API server's log backend writes them.
func readKubernetes(r io.Reader, opts *Options, emit func(Record) error) error {
	return readLines(r, opts, emit, mapKubernetes)
}

// mapKubernetes maps one Kubernetes audit event to an event. The id joins
// the event's auditID and stage with a digest of the record: the API server
// emits each pair once, but copied and edited audit logs do reuse auditIDs
// for other requests, and attest refuses an id reused for other content.
// Importing the same record again still yields the same id.
func mapKubernetes(raw []byte, opts *Options) (*event.Event, error) {
	ev, err := mapRecord(raw, opts, new(k8sEvent))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(ev.Original)
	ev.ID += ":" + hex.EncodeToString(sum[:6])
	return ev, nil
}

// k8sEvent is the part of an audit.k8s.io Event that the mapping reads.
// Unknown members are allowed: Kubernetes adds fields over time.
type k8sEvent struct {
	Kind                     string            `json:"kind"`
	APIVersion               string            `json:"apiVersion"`
	Level                    string            `json:"level"`
	AuditID                  string            `json:"auditID"`
	Stage                    string            `json:"stage"`
	RequestURI               string            `json:"requestURI"`
	Verb                     string            `json:"verb"`
	User                     k8sUser           `json:"user"`
	ImpersonatedUser         *k8sUser          `json:"impersonatedUser"`
	SourceIPs                []string          `json:"sourceIPs"`
	UserAgent                string            `json:"userAgent"`
	ObjectRef                *k8sObjectRef     `json:"objectRef"`
	ResponseStatus           *k8sStatus        `json:"responseStatus"`
	RequestReceivedTimestamp string            `json:"requestReceivedTimestamp"`
	StageTimestamp           string            `json:"stageTimestamp"`
	Timestamp                string            `json:"timestamp"` // audit.k8s.io/v1beta1 only
	Annotations              map[string]string `json:"annotations"`
}

type k8sUser struct {
	Username string   `json:"username"`
	UID      string   `json:"uid"`
	Groups   []string `json:"groups"`
}

type k8sObjectRef struct {
	Resource    string `json:"resource"`
	Subresource string `json:"subresource"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	APIGroup    string `json:"apiGroup"`
	APIVersion  string `json:"apiVersion"`
}

type k8sStatus struct {
	Code    int32  `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// k8sAPIVersions are the audit API versions accepted. v1beta1 is what
// clusters before Kubernetes 1.12 wrote; its Event has the same shape for
// every field read here.
var k8sAPIVersions = []string{"audit.k8s.io/v1", "audit.k8s.io/v1beta1"}

// Annotations the authorizer sets on each event.
const (
	decisionAnnotation = "authorization.k8s.io/decision"
	reasonAnnotation   = "authorization.k8s.io/reason"
)

// k8sIDPrefix starts the id of every event mapped from Kubernetes.
const k8sIDPrefix = "k8s:"

func (ke *k8sEvent) fill(ev *event.Event) error {
	if err := ke.checkKind(); err != nil {
		return err
	}
	if err := checkID("auditID", ke.AuditID, 64); err != nil {
		return err
	}
	if err := checkID("stage", ke.Stage, 32); err != nil {
		return err
	}
	ev.ID = k8sIDPrefix + ke.AuditID + ":" + ke.Stage
	t, err := ke.occurredAt()
	if err != nil {
		return err
	}
	ev.OccurredAt = t
	if ev.Action, err = ke.action(); err != nil {
		return err
	}
	if ev.Outcome, err = ke.outcome(); err != nil {
		return err
	}

	ev.Source = event.Source{Name: "kubernetes", Version: ke.APIVersion}
	ev.Category = ke.category()
	ev.Actor = ke.actor()
	ev.Request.ID = ke.AuditID
	ev.Request.Path = clean(ke.RequestURI, 2048)
	ev.Request.Status = ev.Outcome.Status
	ev.Target = ke.target()
	ev.Details, err = canonicalDetails(ke.details())
	return err
}

func (ke *k8sEvent) checkKind() error {
	switch {
	case ke.Kind == "":
		return fieldError("kind", "is required")
	case ke.Kind != "Event":
		return fieldError("kind", "must be \"Event\", not %q", clean(ke.Kind, 64))
	case ke.APIVersion != "" && !slices.Contains(k8sAPIVersions, ke.APIVersion):
		return fieldError("apiVersion", "must be one of %s, not %q",
			strings.Join(k8sAPIVersions, ", "), clean(ke.APIVersion, 64))
	}
	return nil
}

// occurredAt is when the API server received the request, or failing that
// when the event's stage was reached.
func (ke *k8sEvent) occurredAt() (t time.Time, err error) {
	for _, f := range []struct{ name, value string }{
		{"requestReceivedTimestamp", ke.RequestReceivedTimestamp},
		{"stageTimestamp", ke.StageTimestamp},
		{"timestamp", ke.Timestamp},
	} {
		if f.value != "" {
			return parseTime(f.name, f.value)
		}
	}
	return t, fieldError("requestReceivedTimestamp", "is required (or stageTimestamp)")
}

// resource returns the object reference's resource and subresource, empty
// for a request to a non-resource path such as /healthz.
func (ke *k8sEvent) resource() (resource, sub string) {
	if ke.ObjectRef == nil {
		return "", ""
	}
	return ke.ObjectRef.Resource, ke.ObjectRef.Subresource
}

func (ke *k8sEvent) action() (string, error) {
	if ke.Verb == "" {
		return "", fieldError("verb", "is required")
	}
	prefix := "nonresource"
	if res, sub := ke.resource(); res != "" {
		prefix = res
		if sub != "" {
			prefix += "/" + sub
		}
	}
	a := makeAction(prefix + "." + ke.Verb)
	switch {
	case !startsAlnum(a):
		return "", fieldError("objectRef.resource", "must start with a letter or digit")
	case len(a) > maxActionBytes:
		return "", fieldError("verb", "makes an action longer than %d bytes", maxActionBytes)
	}
	return a, nil
}

// authzResources are the RBAC resources: changing or reading them is about
// who may do what.
var authzResources = []string{"roles", "rolebindings", "clusterroles", "clusterrolebindings"}

// category classifies a request. Requests to non-resource paths are
// system traffic whatever their verb.
func (ke *k8sEvent) category() string {
	res, sub := ke.resource()
	switch {
	case res == "":
		return "system"
	case slices.Contains(authzResources, res), res == "serviceaccounts" && sub == "token":
		return "authorization"
	case res == "pods" && (sub == "exec" || sub == "attach" || sub == "portforward"):
		return "security"
	}
	switch ke.Verb {
	case "get", "list", "watch":
		return "data_access"
	case "create", "update", "patch", "delete", "deletecollection":
		return "data_change"
	}
	return "system"
}

func (ke *k8sEvent) actor() event.Actor {
	u := &ke.User
	a := event.Actor{
		Type:      userType(u),
		ID:        clean(cmp.Or(u.Username, u.UID), 256),
		Name:      clean(u.Username, 256),
		UserAgent: clean(ke.UserAgent, 1024),
	}
	if len(ke.SourceIPs) > 0 {
		a.IP = parseIP(ke.SourceIPs[0])
	}
	return a
}

func userType(u *k8sUser) string {
	switch {
	case u.Username == "system:anonymous", u.Username == "" && u.UID == "":
		return "anonymous"
	case strings.HasPrefix(u.Username, "system:serviceaccount:"):
		return "service"
	case strings.HasPrefix(u.Username, "system:"):
		return "system"
	}
	return "user"
}

// outcome follows the authorizer's decision and the response status. An
// event of a stage before the response (RequestReceived) has no status
// and counts as a success unless the authorizer forbade it.
func (ke *k8sEvent) outcome() (event.Outcome, error) {
	var o event.Outcome
	if s := ke.ResponseStatus; s != nil {
		if s.Code != 0 && (s.Code < 100 || s.Code > 599) {
			return o, fieldError("responseStatus.code", "must be an HTTP status from 100 to 599, not %d", s.Code)
		}
		o.Status = int(s.Code)
		o.Reason = clean(cmp.Or(s.Reason, s.Message), 1024)
	}
	switch {
	case ke.Annotations[decisionAnnotation] == "forbid", o.Status == 401, o.Status == 403:
		o.Result = "denied"
	case o.Status >= 500:
		o.Result = "error"
	case o.Status >= 400:
		o.Result = "failure"
	default:
		o.Result = "success"
	}
	return o, nil
}

func (ke *k8sEvent) target() event.Target {
	r := ke.ObjectRef
	if r == nil || r.Resource == "" {
		return event.Target{}
	}
	typ := r.Resource
	if r.APIGroup != "" {
		typ = r.APIGroup + "/" + typ
	}
	var id string
	switch {
	case r.Namespace != "" && r.Name != "":
		id = r.Namespace + "/" + r.Name
	case r.Name != "":
		id = r.Name
	case r.Namespace != "":
		id = r.Namespace + "/" + r.Resource
	}
	return event.Target{Type: clean(typ, 64), ID: clean(id, 256), Name: clean(r.Name, 512)}
}

// k8sDetails is what an event keeps of an audit event beyond the mapped
// fields. The caps on each string and on the groups keep the object under
// 2 KiB even when every character needs escaping.
type k8sDetails struct {
	Namespace             string   `json:"namespace,omitzero"`
	Stage                 string   `json:"stage,omitzero"`
	Level                 string   `json:"level,omitzero"`
	Groups                []string `json:"groups,omitzero"`
	GroupsOmitted         int      `json:"groups_omitted,omitzero"`
	APIGroup              string   `json:"api_group,omitzero"`
	APIVersion            string   `json:"api_version,omitzero"`
	AuthorizationDecision string   `json:"authorization_decision,omitzero"`
	AuthorizationReason   string   `json:"authorization_reason,omitzero"`
	ImpersonatedUser      string   `json:"impersonated_user,omitzero"`
}

// maxDetailGroups is how many of the user's groups details keep.
const maxDetailGroups = 8

func (ke *k8sEvent) details() *k8sDetails {
	d := &k8sDetails{
		Stage:                 clean(ke.Stage, 32),
		Level:                 clean(ke.Level, 32),
		AuthorizationDecision: clean(ke.Annotations[decisionAnnotation], 16),
		AuthorizationReason:   clean(ke.Annotations[reasonAnnotation], 128),
	}
	if r := ke.ObjectRef; r != nil {
		d.Namespace = clean(r.Namespace, 64)
		d.APIGroup = clean(r.APIGroup, 64)
		d.APIVersion = clean(r.APIVersion, 32)
	}
	for i, g := range ke.User.Groups {
		if i == maxDetailGroups {
			d.GroupsOmitted = len(ke.User.Groups) - i
			break
		}
		d.Groups = append(d.Groups, clean(g, 48))
	}
	if iu := ke.ImpersonatedUser; iu != nil {
		d.ImpersonatedUser = clean(cmp.Or(iu.Username, iu.UID), 64)
	}
	return d
}
