package server

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestRedactingHandler(t *testing.T) {
	const key = "atk_abcdefghijklmnop_" + "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef"
	var buf bytes.Buffer
	log := slog.New(redactingHandler{slog.NewTextHandler(&buf, nil)})
	log.With("path", "/x/"+key).WithGroup("g").Info("saw "+key, "error", errors.New("bad "+key),
		slog.Group("req", "q", key), "n", 3)
	out := buf.String()
	if strings.Contains(out, "0123456789abcdef") {
		t.Errorf("the log holds the key: %s", out)
	}
	if n := strings.Count(out, redacted); n != 4 {
		t.Errorf("the log shows %d markers, want 4: %s", n, out)
	}
	if !strings.Contains(out, "g.n=3") {
		t.Errorf("other attributes lost: %s", out)
	}
}
