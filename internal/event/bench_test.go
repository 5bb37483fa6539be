package event

import (
	"testing"
	"time"
)

func benchEvent(b *testing.B) (*Event, []byte) {
	ev, err := DecodeProducer([]byte(validEvent), &Limits{Now: fixedNow})
	if err != nil {
		b.Fatal(err)
	}
	ev.Tenant = "default"
	return ev, AppendProducer(nil, ev)
}

func BenchmarkDecodeProducer(b *testing.B) {
	_, raw := benchEvent(b)
	lim := &Limits{Now: fixedNow}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeProducer(raw, lim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafTemplate(b *testing.B) {
	ev, _ := benchEvent(b)
	personal := []Commitment{{PathActorEmail, "0123456789012345678901234567890123456789012"}, {PathActorIP, "0123456789012345678901234567890123456789012"}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		t := NewLeafTemplate(ev, personal)
		_ = t.Append(make([]byte, 0, t.Len()), now, 12345)
	}
}

func BenchmarkDecodeLeaf(b *testing.B) {
	ev, _ := benchEvent(b)
	leaf := AppendLeaf(nil, ev, nil)
	b.SetBytes(int64(len(leaf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeLeaf(leaf); err != nil {
			b.Fatal(err)
		}
	}
}
