package scim

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// maxOperations is the most operations one PatchOp may hold.
const maxOperations = 1000

var errOperations = badRequest(typeInvalidSyntax, "Operations must be a list of 1 to %d operations", maxOperations)

// operation is one operation of a PatchOp request.
type operation struct {
	op    string // "add", "remove" or "replace"
	path  string // empty when the value names the attributes
	value jsontext.Value
}

// decodePatch reads a PatchOp request (RFC 7644, section 3.5.2). Op names
// are taken in any case: Entra ID sends "Replace" and "Add".
func decodePatch(body []byte) ([]operation, error) {
	obj, err := decodeObject(body, "the request body")
	if err != nil {
		return nil, err
	}
	if err := checkSchemas(obj["schemas"], patchOpSchema); err != nil {
		return nil, err
	}
	for _, n := range obj.names() {
		if n != "schemas" && n != "operations" {
			return nil, badRequest(typeInvalidSyntax, "a PatchOp has no attribute %s", quote(n))
		}
	}
	if obj["operations"].Kind() != '[' {
		return nil, errOperations
	}
	list, err := decodeList(obj["operations"], "Operations")
	switch {
	case err != nil:
		return nil, err
	case len(list) == 0 || len(list) > maxOperations:
		return nil, errOperations
	}
	ops := make([]operation, len(list))
	for i, v := range list {
		if ops[i], err = decodeOperation(v); err != nil {
			return nil, inOperation(i, err)
		}
	}
	return ops, nil
}

func decodeOperation(v jsontext.Value) (operation, error) {
	if v.Kind() != '{' {
		return operation{}, badRequest(typeInvalidSyntax, "an operation must be an object")
	}
	obj, err := decodeObject(v, "an operation")
	if err != nil {
		return operation{}, err
	}
	var o operation
	for _, n := range obj.names() {
		switch n {
		case "op":
			o.op, err = decodeString(obj[n], "op")
		case "path":
			o.path, err = decodeString(obj[n], "path")
		case "value":
			o.value = obj[n]
		default:
			err = badRequest(typeInvalidSyntax, "an operation has no attribute %s", quote(n))
		}
		if err != nil {
			return operation{}, err
		}
	}
	switch o.op = strings.ToLower(o.op); {
	case o.op != "add" && o.op != "remove" && o.op != "replace":
		return operation{}, badRequest(typeInvalidSyntax, "op must be add, remove or replace")
	case o.op != "remove" && o.value == nil:
		return operation{}, badRequest(typeInvalidValue, "%s needs a value", o.op)
	case o.op == "remove" && o.path == "":
		return operation{}, badRequest(typeNoTarget, "remove needs a path")
	}
	return o, nil
}

// inOperation says which operation an error is about.
func inOperation(i int, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	detail := fmt.Sprintf("operation %d: %s", i+1, ae.detail)
	return &apiError{status: ae.status, scimType: ae.scimType, detail: detail}
}

// applier applies one operation to a resource.
type applier func(op string, t target, v jsontext.Value) error

// applyOps applies ops in order to a resource of the core schema core
// with the extension ext.
func applyOps(ops []operation, core, ext string, apply applier) error {
	for i, o := range ops {
		if err := applyOp(o, core, ext, apply); err != nil {
			return inOperation(i, err)
		}
	}
	return nil
}

// applyOp applies one operation. Without a path its value is an object
// whose names are paths, as Okta sends {"active": false} and Entra ID
// sends {"name.givenName": "Ada"}.
func applyOp(o operation, core, ext string, apply applier) error {
	if o.path != "" {
		t, skip, err := parsePath(o.path, core, ext)
		if err != nil || skip {
			return err
		}
		return apply(o.op, t, o.value)
	}
	if o.value.Kind() != '{' {
		return badRequest(typeInvalidValue, "the value of %s without a path must be an object", o.op)
	}
	obj, err := decodeObject(o.value, "the value")
	if err != nil {
		return err
	}
	for _, n := range obj.names() {
		t, skip, err := parsePath(n, core, ext)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		if err := apply(o.op, t, obj[n]); err != nil {
			return err
		}
	}
	return nil
}

// maxAttempts bounds the read, change and replace of a PUT or PATCH that
// the Backend reports lost a race with another write.
const maxAttempts = 3

// update reads a resource, changes a copy and writes it back, starting
// over if the Backend answers ErrModified.
func update[T any](ctx context.Context, get func(context.Context) (T, error), change func(T) (T, error),
	replace func(context.Context, T) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		cur, err := get(ctx)
		if err != nil {
			return cur, err
		}
		next, err := change(cur)
		if err != nil {
			return next, err
		}
		stored, err := replace(ctx, next)
		if errors.Is(err, ErrModified) && attempt < maxAttempts {
			continue
		}
		return stored, err
	}
}
