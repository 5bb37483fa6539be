package scim

import (
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	filter "github.com/scim2/filter-parser/v2"
)

// maxEmails is the most email addresses a user may have.
const maxEmails = 50

var errTooManyEmails = badRequest(typeInvalidValue, "a user may have at most %d emails", maxEmails)

// emailSubs are the sub-attributes of an email, in lower case; display is
// accepted and not kept.
var emailSubs = []string{"value", "type", "primary", "display"}

// applyEmails applies an operation to emails, to the emails a filter
// selects, or to a sub-attribute of those.
func applyEmails(u *User, op string, t target, v jsontext.Value) error {
	if t.filter == nil {
		if t.sub != "" {
			return badRequest(typeInvalidPath, `emails.%s needs a filter, such as emails[type eq "work"].%s`,
				t.sub, t.sub)
		}
		return applyEmailList(u, op, v)
	}
	if t.sub != "" && !slices.Contains(emailSubs, t.sub) {
		return badRequest(typeNoTarget, "emails has no sub-attribute %s", quote(t.sub))
	}
	hits, err := matchEmails(u.Emails, t.filter)
	if err != nil {
		return err
	}
	if op == "remove" {
		removeEmails(u, hits, t.sub)
		return nil
	}
	if len(hits) == 0 {
		// Entra ID adds an address with emails[type eq "work"].value;
		// the filter then says what the new email is.
		typ, ok := typeFilter(t.filter)
		if !ok {
			return badRequest(typeNoTarget, "the filter matches no email")
		}
		u.Emails = append(u.Emails, Email{Type: typ})
		hits = []int{len(u.Emails) - 1}
	}
	for _, i := range hits {
		if err := setEmail(u, i, t.sub, v); err != nil {
			return err
		}
	}
	return nil
}

// applyEmailList adds to, replaces or removes the whole list. A remove
// with a value removes only the addresses it lists.
func applyEmailList(u *User, op string, v jsontext.Value) error {
	if op == "remove" && (v == nil || v.Kind() == 'n') {
		u.Emails = nil
		return nil
	}
	list, err := decodeList(v, "emails")
	if err != nil {
		return err
	}
	if len(list) > maxEmails {
		return errTooManyEmails
	}
	if op == "replace" {
		u.Emails = nil
	}
	for _, item := range list {
		e, err := decodeEmail(item)
		if err != nil {
			return err
		}
		u.Emails = slices.DeleteFunc(u.Emails, func(o Email) bool { return strings.EqualFold(o.Value, e.Value) })
		switch {
		case op == "remove":
			continue
		case e.Primary && op == "add":
			clearPrimary(u.Emails)
		}
		u.Emails = append(u.Emails, e)
	}
	if len(u.Emails) > maxEmails {
		return errTooManyEmails
	}
	return nil
}

func decodeEmail(v jsontext.Value) (Email, error) {
	obj, err := decodeSub(v, "emails", emailSubs...)
	if err != nil {
		return Email{}, err
	}
	var e Email
	if e.Value, err = decodeString(obj["value"], "emails.value"); err != nil {
		return Email{}, err
	}
	if e.Type, err = decodeString(obj["type"], "emails.type"); err != nil {
		return Email{}, err
	}
	if p := obj["primary"]; p != nil && p.Kind() != 'n' {
		if e.Primary, err = decodeBool(p, "emails.primary"); err != nil {
			return Email{}, err
		}
	}
	if e.Value == "" {
		return Email{}, badRequest(typeInvalidValue, "every email needs a value")
	}
	return e, nil
}

// setEmail sets the sub-attribute sub of email i, or with no sub the
// sub-attributes that v holds.
func setEmail(u *User, i int, sub string, v jsontext.Value) error {
	if sub == "" {
		obj, err := decodeSub(v, "emails", emailSubs...)
		if err != nil {
			return err
		}
		for _, n := range obj.names() {
			if err := setEmail(u, i, n, obj[n]); err != nil {
				return err
			}
		}
		return nil
	}
	e := &u.Emails[i]
	var err error
	switch sub {
	case "value":
		err = setString(&e.Value, "replace", v, "emails.value")
	case "type":
		err = setString(&e.Type, "replace", v, "emails.type")
	case "primary":
		var p bool
		if p, err = decodeBool(v, "emails.primary"); err == nil && p {
			clearPrimary(u.Emails)
		}
		e.Primary = p
	}
	return err
}

// removeEmails removes the emails at hits or, given a sub-attribute other
// than value, clears that sub-attribute in them.
func removeEmails(u *User, hits []int, sub string) {
	for _, i := range slices.Backward(hits) {
		switch sub {
		case "", "value":
			u.Emails = slices.Delete(u.Emails, i, i+1)
		case "type":
			u.Emails[i].Type = ""
		case "primary":
			u.Emails[i].Primary = false
		}
	}
}

func clearPrimary(emails []Email) {
	for i := range emails {
		emails[i].Primary = false
	}
}

// matchEmails returns the indexes of the emails f matches. It checks f
// even when there are no emails.
func matchEmails(emails []Email, f filter.Expression) ([]int, error) {
	if _, err := matches(f, emailGetter(Email{})); err != nil {
		return nil, err
	}
	var hits []int
	for i, e := range emails {
		if ok, _ := matches(f, emailGetter(e)); ok {
			hits = append(hits, i)
		}
	}
	return hits, nil
}

func emailGetter(e Email) getter {
	return func(sub string) (any, bool, bool) {
		switch sub {
		case "value":
			return e.Value, false, true
		case "type":
			return e.Type, false, true
		case "primary":
			return e.Primary, false, true
		}
		return nil, false, false
	}
}

// typeFilter returns X of a filter [type eq "X"].
func typeFilter(f filter.Expression) (string, bool) {
	e, ok := f.(*filter.AttributeExpression)
	if !ok || !strings.EqualFold(e.AttributePath.AttributeName, "type") || e.AttributePath.SubAttribute != nil {
		return "", false
	}
	return filterString(e.CompareValue)
}
