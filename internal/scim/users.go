package scim

import (
	"context"
	"net/http"

	"github.com/go-json-experiment/json/jsontext"
)

// userFilters are the attributes a list of users may be filtered on.
var userFilters = []string{"userName", "externalId", "displayName", "emails.value"}

func listUsers(rq *request) error {
	lq, err := parseList(rq.r.URL.Query(), userSchema, userFilters)
	if err != nil {
		return err
	}
	users, total, err := rq.b.ListUsers(rq.r.Context(), lq.filter, lq.start, lq.count)
	if err != nil {
		return err
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = rq.userJSON(u)
	}
	writeJSON(rq.w, http.StatusOK, newList(total, lq.start, out))
	return nil
}

func getUser(rq *request) error {
	u, err := rq.b.GetUser(rq.r.Context(), rq.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(rq.w, http.StatusOK, rq.userJSON(u))
	return nil
}

// createUser stores a new user. A user created without active is active:
// the identity provider is provisioning the account to be used.
func createUser(rq *request) error {
	body, err := rq.body()
	if err != nil {
		return err
	}
	u, active, err := decodeUser(body)
	if err != nil {
		return err
	}
	if !active {
		u.Active = true
	}
	created, err := rq.b.CreateUser(rq.r.Context(), u)
	if err != nil {
		return err
	}
	rq.w.Header().Set("Location", rq.location("Users", created.ID))
	writeJSON(rq.w, http.StatusCreated, rq.userJSON(created))
	return nil
}

// replaceUser replaces a user with the body, as Okta does to update and to
// deactivate. A body without active leaves it as it was.
func replaceUser(rq *request) error {
	body, err := rq.body()
	if err != nil {
		return err
	}
	u, active, err := decodeUser(body)
	if err != nil {
		return err
	}
	stored, err := rq.updateUser(func(cur *User) (*User, error) {
		next := cloneUser(u)
		next.ID, next.Groups, next.Created, next.LastModified = cur.ID, cur.Groups, cur.Created, cur.LastModified
		if !active {
			next.Active = cur.Active
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	writeJSON(rq.w, http.StatusOK, rq.userJSON(stored))
	return nil
}

// patchUser applies a PatchOp to a user and answers with the result.
func patchUser(rq *request) error {
	body, err := rq.body()
	if err != nil {
		return err
	}
	ops, err := decodePatch(body)
	if err != nil {
		return err
	}
	stored, err := rq.updateUser(func(cur *User) (*User, error) {
		next := cloneUser(cur)
		err := applyOps(ops, userSchema, enterpriseSchema, func(op string, t target, v jsontext.Value) error {
			return applyUser(next, op, t, v)
		})
		if err != nil {
			return nil, err
		}
		return next, checkUser(next)
	})
	if err != nil {
		return err
	}
	writeJSON(rq.w, http.StatusOK, rq.userJSON(stored))
	return nil
}

func deleteUser(rq *request) error {
	if err := rq.b.DeleteUser(rq.r.Context(), rq.r.PathValue("id")); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

// updateUser reads the user of the path, changes it and replaces it.
func (rq *request) updateUser(change func(*User) (*User, error)) (*User, error) {
	id := rq.r.PathValue("id")
	get := func(ctx context.Context) (*User, error) { return rq.b.GetUser(ctx, id) }
	return update(rq.r.Context(), get, change, rq.b.ReplaceUser)
}
