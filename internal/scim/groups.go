package scim

import (
	"context"
	"net/http"

	"github.com/go-json-experiment/json/jsontext"
)

// groupFilters are the attributes a list of groups may be filtered on.
var groupFilters = []string{"displayName", "externalId"}

func listGroups(rq *request) error {
	lq, err := parseList(rq.r.URL.Query(), groupSchema, groupFilters)
	if err != nil {
		return err
	}
	groups, total, err := rq.b.ListGroups(rq.r.Context(), lq.filter, lq.start, lq.count)
	if err != nil {
		return err
	}
	out := make([]groupJSON, len(groups))
	for i, g := range groups {
		out[i] = rq.groupJSON(g)
	}
	writeJSON(rq.w, http.StatusOK, newList(total, lq.start, out))
	return nil
}

func getGroup(rq *request) error {
	g, err := rq.b.GetGroup(rq.r.Context(), rq.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(rq.w, http.StatusOK, rq.groupJSON(g))
	return nil
}

func createGroup(rq *request) error {
	body, err := rq.body()
	if err != nil {
		return err
	}
	g, err := decodeGroup(body)
	if err != nil {
		return err
	}
	created, err := rq.b.CreateGroup(rq.r.Context(), g)
	if err != nil {
		return err
	}
	rq.w.Header().Set("Location", rq.location("Groups", created.ID))
	writeJSON(rq.w, http.StatusCreated, rq.groupJSON(created))
	return nil
}

func replaceGroup(rq *request) error {
	body, err := rq.body()
	if err != nil {
		return err
	}
	g, err := decodeGroup(body)
	if err != nil {
		return err
	}
	stored, err := rq.updateGroup(func(cur *Group) (*Group, error) {
		next := cloneGroup(g)
		next.ID, next.Created, next.LastModified = cur.ID, cur.Created, cur.LastModified
		return next, nil
	})
	if err != nil {
		return err
	}
	writeJSON(rq.w, http.StatusOK, rq.groupJSON(stored))
	return nil
}

// patchGroup applies a PatchOp to a group and answers with the result.
func patchGroup(rq *request) error {
	body, err := rq.body()
	if err != nil {
		return err
	}
	ops, err := decodePatch(body)
	if err != nil {
		return err
	}
	stored, err := rq.updateGroup(func(cur *Group) (*Group, error) {
		next := cloneGroup(cur)
		err := applyOps(ops, groupSchema, "", func(op string, t target, v jsontext.Value) error {
			return applyGroup(next, op, t, v)
		})
		if err != nil {
			return nil, err
		}
		return next, checkGroup(next)
	})
	if err != nil {
		return err
	}
	writeJSON(rq.w, http.StatusOK, rq.groupJSON(stored))
	return nil
}

func deleteGroup(rq *request) error {
	if err := rq.b.DeleteGroup(rq.r.Context(), rq.r.PathValue("id")); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

// updateGroup reads the group of the path, changes it and replaces it.
func (rq *request) updateGroup(change func(*Group) (*Group, error)) (*Group, error) {
	id := rq.r.PathValue("id")
	get := func(ctx context.Context) (*Group, error) { return rq.b.GetGroup(ctx, id) }
	return update(rq.r.Context(), get, change, rq.b.ReplaceGroup)
}
