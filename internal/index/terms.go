// Package index is the audit log's search index: for every filter the query
// API offers it maps a term (a field and a value) to the sequence numbers of
// the events that carry it.
//
// The index is an inverted index in immutable segments. Each segment covers
// a fixed, aligned range of sequence numbers and is written in the same
// transaction as the log entries that complete it; the events after the last
// segment live in an in-memory memtable that any process can rebuild from
// the log. Inside a segment, the terms of each field are sorted and split
// into pages of postings stored as rows keyed by (segment, field, first
// term), so that looking up a term costs one point read per segment, and an
// append costs a few sequential row writes per segment instead of one index
// update per event and field.
//
// The index only narrows the search: every candidate it yields is read back
// from the log and checked against the query, so a stale or damaged index
// can hide events but never show a wrong one, and attest verify rebuilds it
// from the log to prove it complete.
package index

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/attest/attest/internal/event"
)

// Field identifies what a term indexes.
type Field uint8

// Indexed fields. The numbers are stored in the database; never reuse one.
const (
	FieldID         Field = 1  // event id, for idempotent ingest
	FieldLeaf       Field = 2  // first 8 bytes of the leaf hash
	FieldActor      Field = 3  // actor.id
	FieldAction     Field = 4  // action, exact
	FieldCategory   Field = 5  // category
	FieldTargetType Field = 6  // target.type
	FieldTarget     Field = 7  // target.type and target.id
	FieldOutcome    Field = 8  // outcome.result
	FieldSource     Field = 9  // source.name
	FieldIP         Field = 10 // actor.ip, keyed by the tenant's index key
	FieldText       Field = 11 // trigrams of target.name, case-folded

	// colOccurred and colReceived are per-event columns, not terms.
	colOccurred Field = 100
	colReceived Field = 101
)

// Term is one indexed value of one field.
type Term struct {
	Field Field
	Hash  int64
}

// HashValue returns the term of a plain field value. It is not keyed: use a
// Keyer for values that are personal data.
func HashValue(f Field, v string) Term {
	return Term{Field: f, Hash: fnvString(fnvByte(fnvByte(fnvOffset, byte(f)), 0), v)}
}

// FNV-1a, 64 bits: stable across processes and versions, which the stored
// index needs, and cheap.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func fnvString(h uint64, s string) int64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return int64(h)
}

// Keyer makes the terms of personal values, keyed with a tenant's index key
// so that the index cannot be searched for guessed values without that key.
type Keyer struct {
	mu  sync.Mutex // guards mac
	mac hash.Hash
}

// NewKeyer returns a Keyer for one tenant's index key.
func NewKeyer(key []byte) *Keyer {
	return &Keyer{mac: hmac.New(sha256.New, bytes.Clone(key))}
}

// Term returns the keyed term of a value.
func (k *Keyer) Term(f Field, v string) Term {
	var buf [80]byte
	var sum [sha256.Size]byte
	b := append(append(buf[:0], byte(f), 0), v...)
	k.mu.Lock()
	k.mac.Reset()
	k.mac.Write(b)
	k.mac.Sum(sum[:0])
	k.mu.Unlock()
	return Term{Field: f, Hash: int64(binary.BigEndian.Uint64(sum[:]))}
}

// LeafTerm returns the term of a leaf hash.
func LeafTerm(leafHash []byte) Term {
	return Term{Field: FieldLeaf, Hash: int64(binary.BigEndian.Uint64(leafHash[:8]))}
}

// TargetTerm returns the term of a target type and id.
func TargetTerm(typ, id string) Term {
	h := fnvByte(fnvByte(fnvOffset, byte(FieldTarget)), 0)
	h = uint64(fnvString(h, typ))
	return Term{Field: FieldTarget, Hash: fnvString(fnvByte(h, 0), id)}
}

// maxTextRunes bounds how much of each text is indexed as trigrams: all of
// a target name, whose schema limit is 512 bytes.
const maxTextRunes = 512

// linearTrigrams is the number of trigrams up to which duplicates are found
// by comparing with each one kept so far; a longer text uses a set.
const linearTrigrams = 64

// appendTrigrams appends the terms of the distinct case-folded trigrams of
// the first maxTextRunes runes of s that ts[from:] does not hold yet, in the
// order of their first place in s.
func appendTrigrams(ts []Term, from int, s string) []Term {
	// Most texts are short: their folded bytes and rune starts fit in
	// buffers on the stack, and only a long one makes append allocate.
	var foldedBuf [256]byte
	var startsBuf [65]int
	folded, starts := foldedBuf[:0], startsBuf[:0]
	runes := 0
	for _, r := range s {
		if runes == maxTextRunes {
			break
		}
		starts = append(starts, len(folded))
		folded = utf8.AppendRune(folded, FoldRune(r))
		runes++
	}
	starts = append(starts, len(folded))
	var seen map[Term]bool
	if runes-2 > linearTrigrams {
		seen = make(map[Term]bool, runes)
		for _, o := range ts[from:] {
			seen[o] = true
		}
	}
	seed := fnvByte(fnvByte(fnvOffset, byte(FieldText)), 0)
	for i := 0; i+3 <= runes; i++ {
		h := seed
		for _, c := range folded[starts[i]:starts[i+3]] {
			h = (h ^ uint64(c)) * fnvPrime
		}
		t := Term{Field: FieldText, Hash: int64(h)}
		if seen != nil {
			if !seen[t] {
				seen[t] = true
				ts = append(ts, t)
			}
			continue
		}
		if !slices.Contains(ts[from:], t) {
			ts = append(ts, t)
		}
	}
	return ts
}

// FoldRune maps r to one representative of the runes that differ from it
// only in case: the smallest rune of its Unicode simple case folding orbit.
// So σ, ς and Σ fold alike, and so do k, K and the Kelvin sign, which
// lowercasing alone would keep apart.
func FoldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// Fold returns s with every rune case-folded by FoldRune: text search
// compares folded texts.
func Fold(s string) string { return strings.Map(FoldRune, s) }

// TextTerms returns the trigram terms a text search for q must all match,
// or nil when q is shorter than three characters.
func TextTerms(q string) []Term {
	if utf8.RuneCountInString(q) < 3 {
		return nil
	}
	if utf8.RuneCountInString(q) > maxTextRunes {
		// Longer texts are indexed only as far as their first runes.
		q = string([]rune(q)[:maxTextRunes])
	}
	return appendTrigrams(nil, 0, q)
}

// Text search over actions needs no trigrams: the distinct actions of each
// segment are few and listed in its metadata, so a search looks for the
// text in those and adds the matching actions' terms as alternatives.

// Terms returns the terms of an event other than its id and leaf hash,
// which the log adds once it has sequenced the event, and other than the
// trigrams of its text (see Text), which segments add when they are built.
// The client IP, a personal value, is indexed only through keyer.
func Terms(ev *event.Event, keyer *Keyer) []Term {
	ts := make([]Term, 0, 8) // one for each field below
	add := func(f Field, v string) {
		if v != "" {
			ts = append(ts, HashValue(f, v))
		}
	}
	add(FieldActor, ev.Actor.ID)
	add(FieldAction, ev.Action)
	add(FieldCategory, ev.Category)
	add(FieldTargetType, ev.Target.Type)
	if ev.Target.ID != "" {
		ts = append(ts, TargetTerm(ev.Target.Type, ev.Target.ID))
	}
	add(FieldOutcome, ev.Outcome.Result)
	add(FieldSource, ev.Source.Name)
	if ev.Actor.IP != "" {
		ts = append(ts, keyer.Term(FieldIP, ev.Actor.IP))
	}
	return ts
}

// Text returns the text of an event that is indexed as trigrams: the
// target's name, unless personal says it is personal data.
func Text(ev *event.Event, personal func(path string) bool) string {
	if personal(event.PathTargetName) {
		return ""
	}
	return ev.Target.Name
}
